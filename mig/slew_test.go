package mig_test

import (
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
)

// TestIDsIncreaseThroughWallClockSteps drives a generator through the
// slewing ID clock while the wall clock steps, as NTP would step it. Each
// history is a list of (event, expected tick of the next ID): the ID
// sequence strictly increases in every case, and a step back is caught up
// in the time BackRate predicts.
func TestIDsIncreaseThroughWallClockSteps(t *testing.T) {
	type event struct {
		advance  time.Duration // both clocks
		step     time.Duration // wall clock only; negative is back
		wantTick int64         // tick of the next ID, relative to tick0; -1: don't check
	}
	const back = 0.5
	tk := func(d time.Duration) int64 { return int64(d / mig.Tick) }
	for _, tc := range []struct {
		name string
		h    []event
	}{
		{"step back 10ms", []event{
			{advance: 100 * time.Millisecond, wantTick: 10},
			{step: -10 * time.Millisecond, wantTick: 10},
			// Ahead by 10 ms: 20 ms of time moves the ID clock 10 ms.
			{advance: 20 * time.Millisecond, wantTick: 11},
			// Caught up: the ID clock follows time again.
			{advance: 100 * time.Millisecond, wantTick: 21},
		}},
		{"step back 5s", []event{
			{advance: time.Second, wantTick: 100},
			{step: -5 * time.Second, wantTick: 100},
			{advance: 2 * time.Second, wantTick: 200}, // at half speed
			{advance: 8 * time.Second, wantTick: 600}, // gap 5s closed after 10s: 1s + 5s
			{advance: 1 * time.Second, wantTick: 700}, // following again
		}},
		{"step back 1h", []event{
			{step: -time.Hour, wantTick: 0},
			{advance: time.Hour, wantTick: tk(30 * time.Minute)},
			{advance: time.Hour - 10*time.Millisecond, wantTick: tk(time.Hour - 5*time.Millisecond)},
			{advance: 10 * time.Millisecond, wantTick: tk(time.Hour)},
			{advance: time.Second, wantTick: tk(time.Hour + time.Second)},
		}},
		{"step forward is followed", []event{
			{advance: time.Second, wantTick: 100},
			{step: time.Minute, wantTick: 100 + 6000},
			{advance: time.Second, wantTick: 200 + 6000},
		}},
		{"forward then corrected back", []event{
			{step: time.Hour, wantTick: tk(time.Hour)},
			{advance: time.Second, wantTick: tk(time.Hour + time.Second)},
			{step: -time.Hour, wantTick: tk(time.Hour + time.Second)},
			{advance: time.Second, wantTick: tk(time.Hour + 1500*time.Millisecond)},
		}},
		{"repeated small steps back", []event{
			{step: -10 * time.Millisecond, wantTick: 0},
			{step: -10 * time.Millisecond, wantTick: 0},
			{step: -10 * time.Millisecond, wantTick: 0},
			{advance: 60 * time.Millisecond, wantTick: 3},
			{advance: 10 * time.Millisecond, wantTick: 4},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := clock.NewManual(t0)
			s, err := clock.NewSlewing(m, clock.SlewConfig{BackRate: back})
			if err != nil {
				t.Fatal(err)
			}
			g := newGen(t, mig.Config{}, s, nil)
			var prev mig.ID
			next := func() mig.ID {
				t.Helper()
				id, err := g.Next()
				if err != nil {
					t.Fatal(err)
				}
				if id <= prev {
					t.Fatalf("ID %d after %d: not increasing", id, prev)
				}
				prev = id
				return id
			}
			next()
			for i, e := range tc.h {
				// Many IDs between events, each above the last.
				for range 100 {
					next()
				}
				m.Advance(e.advance)
				if e.step > 0 {
					m.StepForward(e.step)
				} else if e.step < 0 {
					m.StepBack(-e.step)
				}
				id := next()
				if e.wantTick >= 0 {
					if got := parts(t, id).Tick - tick0; got != e.wantTick {
						t.Fatalf("event %d (%+v): next ID at tick %d, want %d", i, e, got, e.wantTick)
					}
				}
			}
		})
	}
}
