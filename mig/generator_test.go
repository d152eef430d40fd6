package mig_test

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
)

// manualClock reads a clock.Manual's monotonic time as Unix nanoseconds
// from start: a clock that only moves when the test advances it.
type manualClock struct {
	*clock.Manual
	start int64
}

func newManualClock(start time.Time) manualClock {
	return manualClock{Manual: clock.NewManual(start), start: start.UnixNano()}
}

func (c manualClock) UnixNano() int64 { return c.start + int64(c.Mono()) }

var testLayout = mig.DefaultLayout()

// t0 is a moment one day after the default epoch: tick 8,640,000.
var t0 = testLayout.Epoch().Add(24 * time.Hour)

const tick0 = 8_640_000

func newGen(t testing.TB, cfg mig.Config, c mig.Clock, ceil mig.Ceiling) *mig.Generator {
	t.Helper()
	cfg.Layout = testLayout
	if ceil == nil {
		ceil = mig.NewMemCeiling(mig.MaxTick)
	}
	g, err := mig.New(cfg, c, ceil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func parts(t testing.TB, id mig.ID) mig.Parts {
	t.Helper()
	p, err := testLayout.Decompose(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNextStrictlyIncreasesAndCarriesWorker(t *testing.T) {
	c := newManualClock(t0)
	g := newGen(t, mig.Config{Worker: 9}, c, nil)
	var prev mig.ID
	for i := range 1000 {
		if i%100 == 0 {
			c.Advance(3 * time.Millisecond)
		}
		id, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if id <= prev {
			t.Fatalf("ID %d after %d", id, prev)
		}
		if p := parts(t, id); p.Worker != 9 {
			t.Fatalf("worker %d, want 9", p.Worker)
		}
		prev = id
	}
	p := parts(t, prev)
	if p.Tick != tick0+3 { // 10 advances of 3 ms = 30 ms
		t.Fatalf("last tick %d, want %d", p.Tick, tick0+3)
	}
}

func TestNextUsesClockTickAndResetsSeq(t *testing.T) {
	c := newManualClock(t0)
	g := newGen(t, mig.Config{}, c, nil)
	a, _ := g.Next()
	b, _ := g.Next()
	c.Advance(mig.Tick)
	d, _ := g.Next()
	for i, want := range []mig.Parts{{Tick: tick0, Seq: 0}, {Tick: tick0, Seq: 1}, {Tick: tick0 + 1, Seq: 0}} {
		if got := parts(t, []mig.ID{a, b, d}[i]); got != want {
			t.Fatalf("ID %d: %+v, want %+v", i, got, want)
		}
	}
}

func TestStartIsAFloor(t *testing.T) {
	c := newManualClock(t0)
	g := newGen(t, mig.Config{Start: tick0 + 50}, c, nil)
	if g.LastTick() != tick0+49 {
		t.Fatalf("LastTick before any ID = %d, want %d", g.LastTick(), tick0+49)
	}
	id, err := g.Next()
	if err != nil {
		t.Fatal(err)
	}
	if p := parts(t, id); p.Tick != tick0+50 || p.Seq != 0 {
		t.Fatalf("first ID %+v, want tick %d seq 0", p, tick0+50)
	}
	if g.LastTick() != tick0+50 {
		t.Fatalf("LastTick = %d", g.LastTick())
	}
}

func TestConcurrentUniqueAndPerGoroutineIncreasing(t *testing.T) {
	const goroutines, each = 2, 1_000_000
	c := newManualClock(t0)
	// The clock stands still, so the goroutines borrow: 2M IDs need 8 ticks.
	g := newGen(t, mig.Config{}, c, nil)
	out := make([][]mig.ID, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			ids := make([]mig.ID, 0, each)
			for range each {
				id, err := g.Next()
				if err != nil {
					t.Error(err)
					return
				}
				ids = append(ids, id)
			}
			out[i] = ids
		})
	}
	wg.Wait()
	var all []mig.ID
	for i, ids := range out {
		if !slices.IsSorted(ids) {
			t.Fatalf("goroutine %d's IDs are not increasing", i)
		}
		all = append(all, ids...)
	}
	slices.Sort(all)
	if len(all) != goroutines*each {
		t.Fatalf("%d IDs, want %d", len(all), goroutines*each)
	}
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("duplicate ID %d", all[i])
		}
	}
}

func TestBorrowThenExhaustedWithoutWaiting(t *testing.T) {
	c := newManualClock(t0)
	g := newGen(t, mig.Config{Borrow: 3 * mig.Tick, NoWait: true}, c, nil)
	// The current tick plus 3 borrowed ticks.
	for i := range 4 {
		b, err := g.NextN(mig.MaxBatch)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if p := parts(t, b.Last()); p.Tick != tick0+int64(i) || p.Seq != mig.MaxSeq {
			t.Fatalf("batch %d ends at %+v", i, p)
		}
	}
	if _, err := g.Next(); !errors.Is(err, mig.ErrExhausted) {
		t.Fatalf("Next past the borrow bound = %v, want ErrExhausted", err)
	}
	if _, err := g.NextN(1); !errors.Is(err, mig.ErrExhausted) {
		t.Fatalf("NextN past the borrow bound = %v, want ErrExhausted", err)
	}
	c.Advance(mig.Tick)
	id, err := g.Next()
	if err != nil {
		t.Fatal(err)
	}
	if p := parts(t, id); p.Tick != tick0+4 || p.Seq != 0 {
		t.Fatalf("after a tick: %+v, want tick %d", p, tick0+4)
	}
	if s := g.Stats(); s.Exhausted != 2 || s.Waits != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWaitsForTheClockPastTheBorrowBound(t *testing.T) {
	c := newManualClock(t0)
	g := newGen(t, mig.Config{Borrow: mig.Tick}, c, nil)
	for range 2 {
		if _, err := g.NextN(mig.MaxBatch); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan mig.ID)
	go func() {
		id, err := g.Next()
		if err != nil {
			t.Error(err)
		}
		got <- id
	}()
	for c.Waiters() == 0 {
		<-clock.NewReal().After(time.Millisecond)
	}
	select {
	case id := <-got:
		t.Fatalf("Next returned %d before the clock moved", id)
	default:
	}
	c.Advance(mig.Tick)
	id := <-got
	if p := parts(t, id); p.Tick != tick0+2 {
		t.Fatalf("after waiting: tick %d, want %d (borrow bound respected)", p.Tick, tick0+2)
	}
	if s := g.Stats(); s.Waits != 1 {
		t.Fatalf("waits = %d, want 1", s.Waits)
	}
}

func TestCeilingIsNeverPassed(t *testing.T) {
	c := newManualClock(t0)
	ceil := mig.NewMemCeiling(tick0 + 1)
	g := newGen(t, mig.Config{Borrow: 5 * mig.Tick, NoWait: true}, c, ceil)
	n := 0
	for {
		id, err := g.Next()
		if errors.Is(err, mig.ErrCeiling) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p := parts(t, id); p.Tick > tick0+1 {
			t.Fatalf("ID at tick %d above ceiling %d", p.Tick, tick0+1)
		}
		n++
	}
	if n != 2*(mig.MaxSeq+1) {
		t.Fatalf("%d IDs under the ceiling, want %d", n, 2*(mig.MaxSeq+1))
	}
	// A batch that would straddle the ceiling is refused whole.
	c.Advance(mig.Tick)
	if _, err := g.NextN(10); !errors.Is(err, mig.ErrCeiling) {
		t.Fatalf("NextN above the ceiling = %v", err)
	}
	// The clock passing the ceiling does not let IDs through either.
	c.Advance(10 * mig.Tick)
	if _, err := g.Next(); !errors.Is(err, mig.ErrCeiling) {
		t.Fatalf("Next with the clock past the ceiling = %v", err)
	}
	ceil.Raise(tick0 + 20)
	id, err := g.Next()
	if err != nil {
		t.Fatal(err)
	}
	if p := parts(t, id); p.Tick != tick0+11 {
		t.Fatalf("after raising: tick %d, want %d", p.Tick, tick0+11)
	}
	if g.Stats().CeilingHits == 0 {
		t.Fatal("ceiling hits not counted")
	}
}

func TestStoppedGeneratorFailsAndReleasesWaiters(t *testing.T) {
	c := newManualClock(t0)
	g := newGen(t, mig.Config{Borrow: mig.Tick}, c, nil)
	for range 2 {
		if _, err := g.NextN(mig.MaxBatch); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error)
	go func() {
		_, err := g.Next()
		errc <- err
	}()
	for c.Waiters() == 0 {
		<-clock.NewReal().After(time.Millisecond)
	}
	if last := g.Stop(); last != tick0+1 {
		t.Fatalf("Stop returned last tick %d, want %d", last, tick0+1)
	}
	if err := <-errc; !errors.Is(err, mig.ErrFenced) {
		t.Fatalf("waiting Next after Stop = %v, want ErrFenced", err)
	}
	c.Advance(time.Hour)
	if _, err := g.Next(); !errors.Is(err, mig.ErrFenced) {
		t.Fatalf("Next after Stop = %v", err)
	}
	if _, err := g.NextN(5); !errors.Is(err, mig.ErrFenced) {
		t.Fatalf("NextN after Stop = %v", err)
	}
	if !g.Stopped() || g.Stop() != tick0+1 || g.LastTick() != tick0+1 {
		t.Fatal("second Stop or LastTick disagrees")
	}
}

// Stop is atomic with issuing: nothing issued, even by calls in flight
// while Stop ran, lies above the tick Stop returns. A clean shutdown
// persists that tick as the watermark, so this is what keeps the next
// holder of the worker ID from repeating an ID.
func TestStopBoundsEverythingIssued(t *testing.T) {
	for range 20 {
		c := newRacingClock(int64(5 * time.Microsecond)) // a new tick every 2,000 readings
		g := newGen(t, mig.Config{}, c, nil)
		var wg sync.WaitGroup
		maxTick := make([]int64, 2)
		for i := range 2 {
			wg.Go(func() {
				for {
					id, err := g.Next()
					if errors.Is(err, mig.ErrFenced) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					maxTick[i] = max(maxTick[i], parts(t, id).Tick)
				}
			})
		}
		for c.ns.Load() < t0.UnixNano()+int64(50*mig.Tick) {
			runtime.Gosched()
		}
		last := g.Stop()
		wg.Wait()
		if m := max(maxTick[0], maxTick[1]); m > last {
			t.Fatalf("issued tick %d after Stop returned %d", m, last)
		}
	}
}

func TestClockOutsideLayout(t *testing.T) {
	c := newManualClock(testLayout.Epoch().Add(-time.Second))
	g := newGen(t, mig.Config{}, c, nil)
	if _, err := g.Next(); !errors.Is(err, mig.ErrClockRange) {
		t.Fatalf("before the epoch: %v", err)
	}
	c2 := newManualClock(testLayout.LastTime())
	g2 := newGen(t, mig.Config{}, c2, nil)
	if _, err := g2.Next(); !errors.Is(err, mig.ErrClockRange) {
		t.Fatalf("at the layout's end: %v", err)
	}
}

func TestNextNBatches(t *testing.T) {
	c := newManualClock(t0)
	g := newGen(t, mig.Config{Worker: 3}, c, nil)
	if _, err := g.NextN(mig.MaxSeq - 9); err != nil { // leave 10 in tick0
		t.Fatal(err)
	}
	b, err := g.NextN(25)
	if err != nil {
		t.Fatal(err)
	}
	runs := b.Runs(nil)
	if len(runs) != 2 || runs[0].Count != 10 || runs[1].Count != 15 {
		t.Fatalf("runs %+v, want 10 then 15", runs)
	}
	ids := b.AppendIDs(nil)
	if len(ids) != 25 || ids[0] != b.First() || ids[24] != b.Last() || !slices.IsSorted(ids) {
		t.Fatalf("ids %v", ids)
	}
	for i, r := range runs {
		if p := parts(t, r.First); p.Tick != tick0+int64(i) || p.Worker != 3 {
			t.Fatalf("run %d starts at %+v", i, p)
		}
	}
	next, _ := g.Next()
	if next <= b.Last() {
		t.Fatalf("Next %d not above batch end %d", next, b.Last())
	}
	for _, n := range []int{0, -1, mig.MaxBatch + 1} {
		if _, err := g.NextN(n); !errors.Is(err, mig.ErrBatchSize) {
			t.Fatalf("NextN(%d) = %v", n, err)
		}
	}
	// A refused batch consumed nothing.
	after, _ := g.Next()
	if p, q := parts(t, next), parts(t, after); q.Tick != p.Tick || q.Seq != p.Seq+1 {
		t.Fatalf("bad batch consumed IDs: %+v then %+v", p, q)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  mig.Config
		want error
	}{
		{"worker 64", mig.Config{Worker: 64}, mig.ErrWorkerRange},
		{"negative start", mig.Config{Start: -1}, mig.ErrTickRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mig.New(tc.cfg, newManualClock(t0), mig.NewMemCeiling(0)); !errors.Is(err, tc.want) {
				t.Fatalf("New = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := mig.New(mig.Config{Borrow: -1}, newManualClock(t0), mig.NewMemCeiling(0)); err == nil {
		t.Fatal("negative borrow accepted")
	}
}

// TestUnavailableFamily: every refusal to issue now is of the
// ErrUnavailable family, and keeps its own identity and text; a bad batch
// size is not a refusal.
func TestUnavailableFamily(t *testing.T) {
	for _, err := range []error{mig.ErrFenced, mig.ErrCeiling, mig.ErrExhausted, mig.ErrClockRange} {
		wrapped := fmt.Errorf("%w: details", err)
		if !errors.Is(wrapped, mig.ErrUnavailable) || !errors.Is(wrapped, err) {
			t.Errorf("%q: errors.Is ErrUnavailable %v, itself %v; want both", wrapped, errors.Is(wrapped, mig.ErrUnavailable), errors.Is(wrapped, err))
		}
		if !strings.HasPrefix(err.Error(), "mig: ") || err.Error() == mig.ErrUnavailable.Error() {
			t.Errorf("refusal %q has no text of its own", err)
		}
	}
	if errors.Is(mig.ErrBatchSize, mig.ErrUnavailable) {
		t.Error("ErrBatchSize is of the ErrUnavailable family")
	}
	if errors.Is(mig.ErrCeiling, mig.ErrFenced) {
		t.Error("ErrCeiling matches ErrFenced")
	}
}
