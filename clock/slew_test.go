package clock

import (
	"errors"
	"math"
	"math/big"
	"sync"
	"testing"
	"testing/quick"
	"time"
)

var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// floorScale is the reference for rate.scale: floor(d * f), with f taken
// exactly as the float64 it is, computed with big rationals.
func floorScale(d int64, f float64) int64 {
	if d <= 0 {
		return 0
	}
	r := new(big.Rat).SetFloat64(f)
	r.Mul(r, new(big.Rat).SetInt64(d))
	q := new(big.Int).Quo(r.Num(), r.Denom()) // both positive: truncation is floor
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return q.Int64()
}

func TestSlewConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  SlewConfig
		ok   bool
	}{
		{"zero is defaults", SlewConfig{}, true},
		{"custom", SlewConfig{BackRate: 0.1, ForwardRate: 2, StepThreshold: time.Second}, true},
		{"back rate just below one", SlewConfig{BackRate: 0.999999}, true},
		{"back rate one", SlewConfig{BackRate: 1}, false},
		{"back rate above one", SlewConfig{BackRate: 1.5}, false},
		{"back rate negative", SlewConfig{BackRate: -0.5}, false},
		{"back rate NaN", SlewConfig{BackRate: math.NaN()}, false},
		{"back rate too small to matter", SlewConfig{BackRate: 1e-20}, false},
		{"forward rate negative", SlewConfig{ForwardRate: -1}, false},
		{"forward rate NaN", SlewConfig{ForwardRate: math.NaN()}, false},
		{"forward rate infinite", SlewConfig{ForwardRate: math.Inf(1)}, false},
		{"forward rate at bound", SlewConfig{ForwardRate: MaxForwardRate}, true},
		{"forward rate past bound", SlewConfig{ForwardRate: MaxForwardRate + 1}, false},
		{"threshold negative", SlewConfig{StepThreshold: -time.Nanosecond}, false},
		{"hold", SlewConfig{HoldForward: time.Second}, true},
		{"hold negative", SlewConfig{HoldForward: -time.Nanosecond}, false},
		{"held from the start", SlewConfig{HoldForward: time.Second, StartHeld: time.Hour}, true},
		{"held from the start, negative", SlewConfig{HoldForward: time.Second, StartHeld: -time.Hour}, false},
		{"held from the start, no check", SlewConfig{StartHeld: time.Hour}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			_, err = NewSlewing(NewManual(start), tc.cfg)
			if tc.ok != (err == nil) {
				t.Fatalf("NewSlewing error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestNewSlewingNilSource(t *testing.T) {
	if _, err := NewSlewing(nil, SlewConfig{}); !errors.Is(err, ErrNilSource) {
		t.Fatalf("NewSlewing(nil) error = %v, want ErrNilSource", err)
	}
}

// event is one line of a history: something happens to the Manual clock,
// then the ID clock is read and must equal start+want.
type event struct {
	op   string        // "advance", "back", "fwd", "raise" (to start+d), "read"
	d    time.Duration // amount, or the raise target relative to start
	want time.Duration // ID clock minus start after the event
}

func apply(m *Manual, s *Slewing, op string, d time.Duration) {
	switch op {
	case "advance":
		m.Advance(d)
	case "back":
		m.StepBack(d)
	case "fwd":
		m.StepForward(d)
	case "raise":
		s.Raise(start.Add(d).UnixNano())
	case "read":
	}
}

func TestSlewingHistory(t *testing.T) {
	const ms, s, h = time.Millisecond, time.Second, time.Hour
	for _, tc := range []struct {
		name      string
		cfg       SlewConfig
		history   []event
		back, fwd uint64 // steps the counters must show at the end
	}{
		{
			name: "step back 10ms slews at half speed",
			history: []event{
				{"advance", 10 * ms, 10 * ms},
				{"back", 10 * ms, 10 * ms}, // stands at the last value, once
				{"advance", 4 * ms, 12 * ms},
				{"advance", 16 * ms, 20 * ms}, // gap 10ms closed after 20ms
				{"advance", 1 * ms, 21 * ms},  // following again
			},
			back: 1,
		},
		{
			name: "step back 5s",
			history: []event{
				{"advance", 1 * s, 1 * s},
				{"back", 5 * s, 1 * s},
				{"advance", 2 * s, 2 * s},
				{"advance", 8 * s, 6 * s}, // wall -4s+10s
				{"advance", 1 * s, 7 * s},
			},
			back: 1,
		},
		{
			name: "step back 1h",
			history: []event{
				{"back", h, 0},
				{"read", 0, 0},
				{"advance", h, h / 2},
				{"advance", h, h},
				{"advance", time.Minute, h + time.Minute},
			},
			back: 1,
		},
		{
			name: "back rate 0.25",
			cfg:  SlewConfig{BackRate: 0.25},
			history: []event{
				{"back", s, 0},
				{"advance", s, 750 * ms},
				{"advance", 3 * s, 3 * s},
				{"advance", s, 4 * s},
			},
			back: 1,
		},
		{
			name: "step back inside threshold is slewed but not counted",
			history: []event{
				{"advance", s, s},
				{"back", ms, s},
				{"advance", 2 * ms, s + ms},
				{"advance", ms, s + 2*ms},
			},
		},
		{
			name: "step back during a slew starts from where the clock is",
			history: []event{
				{"back", 10 * s, 0},
				{"advance", 2 * s, 1 * s},
				{"back", 10 * s, 1 * s}, // wall -18s
				{"advance", 4 * s, 3 * s},
				{"advance", 34 * s, 20 * s}, // gap 17s closed after 34s
				{"advance", s, 21 * s},
			},
			back: 2,
		},
		{
			name: "step forward is followed",
			history: []event{
				{"advance", s, s},
				{"fwd", 10 * s, 11 * s},
				{"advance", s, 12 * s},
			},
			fwd: 1,
		},
		{
			name: "step forward ends a slew back",
			history: []event{
				{"back", 10 * s, 0},
				{"advance", 4 * s, 2 * s}, // wall -6s
				{"fwd", 20 * s, 14 * s},
				{"advance", s, 15 * s},
			},
			back: 1, fwd: 1,
		},
		{
			name: "step forward slewed at ForwardRate 1",
			cfg:  SlewConfig{ForwardRate: 1},
			history: []event{
				{"fwd", 10 * s, 0},
				{"advance", 4 * s, 8 * s},  // wall 14s
				{"advance", 6 * s, 20 * s}, // met the wall after gap/ForwardRate
				{"advance", s, 21 * s},
			},
			fwd: 1,
		},
		{
			name: "step back during a forward slew slows from where the clock is",
			cfg:  SlewConfig{ForwardRate: 1},
			history: []event{
				{"fwd", 10 * s, 0},
				{"advance", 2 * s, 4 * s}, // wall 12s
				{"back", 20 * s, 4 * s},   // wall -8s, gap 12s
				{"advance", 2 * s, 5 * s},
				{"advance", 22 * s, 16 * s},
				{"advance", s, 17 * s},
			},
			back: 1, fwd: 1,
		},
		{
			name: "raise jumps up and slews back",
			history: []event{
				{"raise", 10 * s, 10 * s},
				{"advance", 2 * s, 11 * s},
				{"advance", 18 * s, 20 * s},
				{"advance", s, 21 * s},
			},
		},
		{
			name: "raise below the clock changes nothing",
			history: []event{
				{"advance", 5 * s, 5 * s},
				{"raise", s, 5 * s},
				{"advance", s, 6 * s},
			},
		},
		{
			name: "raise during a slew back",
			history: []event{
				{"back", 4 * s, 0},
				{"advance", 2 * s, s}, // wall -2s
				{"raise", 3 * s, 3 * s},
				{"advance", 2 * s, 4 * s},
				{"advance", 8 * s, 8 * s}, // wall 8s: gap 5s closed in 10s
				{"advance", s, 9 * s},
			},
			back: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewManual(start)
			s, err := NewSlewing(m, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.UnixNano(); got != start.UnixNano() {
				t.Fatalf("initial UnixNano = %d, want the wall clock %d", got, start.UnixNano())
			}
			for i, ev := range tc.history {
				apply(m, s, ev.op, ev.d)
				got := time.Duration(s.UnixNano() - start.UnixNano())
				if got != ev.want {
					t.Fatalf("event %d (%s %v): ID clock = start%+v, want start%+v", i, ev.op, ev.d, got, ev.want)
				}
			}
			st := s.Status()
			if st.StepsBack != tc.back || st.StepsForward != tc.fwd {
				t.Fatalf("steps back/forward = %d/%d, want %d/%d", st.StepsBack, st.StepsForward, tc.back, tc.fwd)
			}
		})
	}
}

// TestSlewingRate steps the wall clock back and reads the ID clock after
// every small advance: it must advance at exactly (1-BackRate) of monotonic
// time, never decrease, and meet the wall clock after gap/BackRate.
func TestSlewingRate(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate float64
		step time.Duration
		tick time.Duration
	}{
		{"10ms at 0.5", 0.5, 10 * time.Millisecond, 100 * time.Microsecond},
		{"10ms at 0.3 odd ticks", 0.3, 10 * time.Millisecond, 7*time.Microsecond + 3},
		{"5s at 0.5", 0.5, 5 * time.Second, time.Millisecond},
		{"5s at 0.1", 0.1, 5 * time.Second, time.Millisecond},
		{"1h at 0.5", 0.5, time.Hour, time.Second},
		{"1h at 0.9", 0.9, time.Hour, 333 * time.Millisecond},
		{"1µs at 0.5 nanosecond ticks", 0.5, time.Microsecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewManual(start)
			s, err := NewSlewing(m, SlewConfig{BackRate: tc.rate})
			if err != nil {
				t.Fatal(err)
			}
			m.Advance(time.Second)
			v0 := s.UnixNano()
			m.StepBack(tc.step)
			if got := s.UnixNano(); got != v0 {
				t.Fatalf("after the step: %d, want %d", got, v0)
			}
			if st := s.Status(); !st.Slewing && tc.step > DefaultStepThreshold || st.Offset != tc.step {
				t.Fatalf("status after step = %+v, want slewing with offset %v", st, tc.step)
			}
			slow := 1 - tc.rate
			predicted := time.Duration(float64(tc.step) / tc.rate)
			prev := v0
			var elapsed time.Duration
			for {
				m.Advance(tc.tick)
				elapsed += tc.tick
				v := s.UnixNano()
				if v < prev {
					t.Fatalf("after %v: went back from %d to %d", elapsed, prev, v)
				}
				wall := m.Now().Wall.UnixNano()
				want := v0 + floorScale(int64(elapsed), slow)
				if want < wall {
					// Caught up: on the wall clock, in the predicted time.
					if v != wall {
						t.Fatalf("after %v: %d, want the wall clock %d", elapsed, v, wall)
					}
					if d := elapsed - predicted; d < 0 || d > tc.tick {
						t.Fatalf("caught up after %v, want %v (+ one tick %v)", elapsed, predicted, tc.tick)
					}
					break
				}
				if v != want {
					t.Fatalf("after %v: %d, want %d (exactly %v of monotonic time)", elapsed, v, want, slow)
				}
				// Each step is the tick scaled, to the nanosecond.
				if d, w := float64(v-prev), float64(tc.tick)*slow; math.Abs(d-w) > 1 {
					t.Fatalf("after %v: advanced %v in a tick, want %v", elapsed, d, w)
				}
				prev = v
				if elapsed > 2*predicted+time.Second {
					t.Fatalf("no catch-up after %v, predicted %v", elapsed, predicted)
				}
			}
			if st := s.Status(); st.Slewing || st.StepsBack != 1 && tc.step > DefaultStepThreshold {
				t.Fatalf("status after catch-up = %+v", st)
			}
		})
	}
}

// TestSlewingForward steps the wall clock forward: with ForwardRate 0 the
// ID clock follows at once, otherwise it runs at (1+ForwardRate) until it
// meets the wall clock after gap/ForwardRate, and never passes it.
func TestSlewingForward(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate float64
		step time.Duration
		tick time.Duration
	}{
		{"followed", 0, 5 * time.Second, time.Millisecond},
		{"slewed at 1", 1, 5 * time.Second, time.Millisecond},
		{"slewed at 0.5", 0.5, time.Hour, time.Second},
		{"slewed at 0.01", 0.01, 10 * time.Millisecond, 100 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewManual(start)
			s, err := NewSlewing(m, SlewConfig{ForwardRate: tc.rate})
			if err != nil {
				t.Fatal(err)
			}
			v0 := s.UnixNano()
			m.StepForward(tc.step)
			if tc.rate == 0 {
				if got, want := s.UnixNano(), m.Now().Wall.UnixNano(); got != want {
					t.Fatalf("after the step: %d, want the wall clock %d", got, want)
				}
				if st := s.Status(); st.StepsForward != 1 || st.Slewing {
					t.Fatalf("status = %+v, want one step forward, not slewing", st)
				}
				return
			}
			if st := s.Status(); !st.Slewing || st.Offset != -tc.step || st.StepsForward != 1 {
				t.Fatalf("status after step = %+v", st)
			}
			predicted := time.Duration(float64(tc.step) / tc.rate)
			var elapsed time.Duration
			for {
				m.Advance(tc.tick)
				elapsed += tc.tick
				v := s.UnixNano()
				wall := m.Now().Wall.UnixNano()
				if v > wall {
					t.Fatalf("after %v: passed the wall clock: %d > %d", elapsed, v, wall)
				}
				want := v0 + floorScale(int64(elapsed), 1+tc.rate)
				if want >= wall {
					if v != wall {
						t.Fatalf("after %v: %d, want the wall clock %d", elapsed, v, wall)
					}
					if d := elapsed - predicted; d < 0 || d > tc.tick {
						t.Fatalf("caught up after %v, want %v (+ one tick %v)", elapsed, predicted, tc.tick)
					}
					break
				}
				if v != want {
					t.Fatalf("after %v: %d, want %d", elapsed, v, want)
				}
				if elapsed > 2*predicted+time.Second {
					t.Fatalf("no catch-up after %v, predicted %v", elapsed, predicted)
				}
			}
		})
	}
}

// TestSlewingHold: with HoldForward, a step forward past it is held (the
// ID clock goes on with monotonic time) until released or undone by a
// step back, and each such step is signalled; smaller steps are followed.
func TestSlewingHold(t *testing.T) {
	const hold = 500 * time.Millisecond
	newHeld := func(t *testing.T, fwdRate float64) (*Manual, *Slewing) {
		t.Helper()
		m := NewManual(start)
		s, err := NewSlewing(m, SlewConfig{HoldForward: hold, ForwardRate: fwdRate})
		if err != nil {
			t.Fatal(err)
		}
		return m, s
	}
	signalled := func(s *Slewing) bool {
		select {
		case <-s.Stepped():
			return true
		default:
			return false
		}
	}
	at := func(d time.Duration) int64 { return start.Add(d).UnixNano() }

	t.Run("held until settled", func(t *testing.T) {
		m, s := newHeld(t, 0)
		m.Advance(time.Second)
		m.StepForward(time.Hour)
		m.Advance(time.Second)
		if got, want := s.UnixNano(), at(2*time.Second); got != want {
			t.Fatalf("after a held step: %d, want monotonic progress %d", got, want)
		}
		if !signalled(s) {
			t.Fatal("the held step was not signalled")
		}
		b := s.Basis()
		if b.Held != time.Hour || !b.Wall.Equal(start.Add(2*time.Second)) || b.Changes != 1 {
			t.Fatalf("Basis() = %+v; want %v, 1h held, 1 change", b, start.Add(2*time.Second))
		}
		if st := s.Status(); st.Held != time.Hour || st.HeldSteps != 1 || st.StepsForward != 1 || st.Slewing || st.Offset != 0 {
			t.Fatalf("status while held = %+v", st)
		}
		if !s.Settle(b, 0) || s.Status().Held != time.Hour {
			t.Fatalf("a verdict against the step released it: %+v", s.Status())
		}
		if !s.Settle(b, b.Held) {
			t.Fatal("Settle refused a verdict on the clock as it is")
		}
		if got, want := s.UnixNano(), at(time.Hour+2*time.Second); got != want {
			t.Fatalf("after the release: %d, want the wall clock %d", got, want)
		}
		if st := s.Status(); st.Held != 0 || st.Released != 1 {
			t.Fatalf("status after the release = %+v", st)
		}
		if signalled(s) {
			t.Fatal("a release was signalled as a step")
		}
	})
	t.Run("released then slewed", func(t *testing.T) {
		m, s := newHeld(t, 1)
		m.StepForward(10 * time.Second)
		s.Settle(s.Basis(), time.Hour)
		m.Advance(time.Second)
		if got, want := s.UnixNano(), at(2*time.Second); got != want {
			t.Fatalf("one second after the release: %d, want %d (slewing at twice the speed)", got, want)
		}
	})
	t.Run("a verdict on a clock that stepped since is void", func(t *testing.T) {
		m, s := newHeld(t, 0)
		m.StepForward(time.Hour)
		b := s.Basis()
		m.StepBack(time.Hour)
		s.UnixNano()
		m.StepForward(time.Hour) // the same held amount, but not the same step
		s.UnixNano()
		if s.Settle(b, b.Held) {
			t.Fatal("Settle took a verdict on a clock that stepped since")
		}
		if st := s.Status(); st.Held != time.Hour || st.Released != 0 {
			t.Fatalf("after a void verdict: %+v", st)
		}
	})
	t.Run("undone by a step back", func(t *testing.T) {
		m, s := newHeld(t, 0)
		m.StepForward(time.Hour)
		s.UnixNano()
		signalled(s)
		m.Advance(time.Second)
		m.StepBack(10 * time.Minute)
		if got, want := s.UnixNano(), at(time.Second); got != want {
			t.Fatalf("after a partial correction: %d, want %d", got, want)
		}
		if !signalled(s) {
			t.Fatal("the step back was not signalled")
		}
		if st := s.Status(); st.Held != 50*time.Minute || st.Slewing {
			t.Fatalf("after a partial correction: %+v", st)
		}
		m.StepBack(50*time.Minute + 3*time.Second)
		m.Advance(time.Second)
		// The rest of the step back (3s) is slewed as any other.
		if got, want := s.UnixNano(), at(time.Second+time.Second/2); got != want {
			t.Fatalf("after the full correction and 3s more: %d, want %d (slewing back)", got, want)
		}
		if st := s.Status(); st.Held != 0 || st.Offset != 2500*time.Millisecond {
			t.Fatalf("after the full correction: %+v", st)
		}
	})
	t.Run("the rest of a corrected step is followed", func(t *testing.T) {
		m, s := newHeld(t, 0)
		m.StepForward(time.Hour)
		s.UnixNano()
		m.StepBack(time.Hour - 100*time.Millisecond) // the correction, less the drift meanwhile
		if got, want := s.UnixNano(), at(100*time.Millisecond); got != want {
			t.Fatalf("after the correction: %d, want %d", got, want)
		}
		if st := s.Status(); st.Held != 0 || st.Unchecked != 100*time.Millisecond {
			t.Fatalf("after the correction: %+v, want 100ms followed unchecked", st)
		}
	})
	t.Run("small steps followed, up to HoldForward between checks", func(t *testing.T) {
		m, s := newHeld(t, 0)
		m.StepForward(hold)
		if got, want := s.UnixNano(), at(hold); got != want {
			t.Fatalf("after a step of HoldForward: %d, want the wall clock %d", got, want)
		}
		if signalled(s) || s.Status().Held != 0 {
			t.Fatalf("a step of HoldForward was held: %+v", s.Status())
		}
		m.StepForward(2 * time.Millisecond)
		if got, want := s.UnixNano(), at(hold); got != want {
			t.Fatalf("after one more small step: %d, want %d (held)", got, want)
		}
		if st := s.Status(); !signalled(s) || st.Held != 2*time.Millisecond || st.Unchecked != hold {
			t.Fatalf("small steps past HoldForward in all: %+v, want the last held and signalled", st)
		}
		s.Settle(s.Basis(), 0) // the clock followed is right; the held step is not
		m.StepForward(400 * time.Millisecond)
		if st := s.Status(); st.Held != 2*time.Millisecond || st.Unchecked != 400*time.Millisecond {
			t.Fatalf("a small step after a check: %+v, want it followed", st)
		}
	})
	// A verdict counts as checked only the small steps followed before
	// the check measured: a step forward of 400ms after it is held when
	// those since take the sum past HoldForward.
	for _, tc := range []struct {
		name          string
		before, since []time.Duration
		held          time.Duration
	}{
		{"a verdict checks only the small steps before it", []time.Duration{300 * time.Millisecond}, []time.Duration{150 * time.Millisecond}, 400 * time.Millisecond},
		{"a step taken back and made again while a check measures counts twice", []time.Duration{400 * time.Millisecond}, []time.Duration{-400 * time.Millisecond, 400 * time.Millisecond}, 800 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, s := newHeld(t, 0)
			step := func(d time.Duration) {
				if d < 0 {
					m.StepBack(-d)
				} else {
					m.StepForward(d)
				}
				s.UnixNano()
			}
			for _, d := range tc.before {
				step(d)
			}
			b := s.Basis() // the check measures now
			for _, d := range tc.since {
				step(d)
			}
			s.Settle(b, 0)
			step(400 * time.Millisecond)
			if st := s.Status(); st.Held != tc.held {
				t.Fatalf("%+v, want %v held", st, tc.held)
			}
		})
	}
	t.Run("a held step released in part", func(t *testing.T) {
		m, s := newHeld(t, 0)
		m.StepForward(time.Hour)
		if !s.Settle(s.Basis(), time.Minute) { // a check found the wall clock a minute nearer
			t.Fatal("Settle refused")
		}
		if st := s.Status(); st.Held != time.Hour-time.Minute || st.UnixNano != at(time.Minute) {
			t.Fatalf("after releasing a minute: %+v", st)
		}
	})
	// A wall clock jittering back and forth, with checks that find the
	// clock followed right (refuting the held step, as the monitor's
	// rounds do) between the pairs or between back and forth, lets
	// nothing of the held step through.
	for _, tc := range []struct {
		name   string
		jitter time.Duration
		across bool // a check between each step back and the step forth
	}{
		{"a jittering wall clock lets nothing of a held step through", 10 * time.Millisecond, false},
		{"a step back and forward across a refuting check lets nothing through", 300 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, s := newHeld(t, 0)
			m.StepForward(time.Hour)
			s.UnixNano()
			for i := range 200 {
				m.StepBack(tc.jitter)
				s.UnixNano()
				if tc.across || i%10 == 9 {
					s.Settle(s.Basis(), 0)
				}
				m.StepForward(tc.jitter)
				s.UnixNano()
			}
			if b := s.Basis(); b.Held != time.Hour || !b.Wall.Equal(start) {
				t.Fatalf("after 200 jitters: %+v, want the hour held and the wall clock followed at %v", b, start)
			}
		})
	}
	t.Run("a stale reading changes nothing", func(t *testing.T) {
		m, s := newHeld(t, 0)
		m.StepForward(time.Hour)
		s.UnixNano()
		stale := m.Now()
		m.Advance(10 * time.Millisecond)
		v := s.UnixNano()
		s.mu.Lock()
		got := s.readLocked(stale) // a reader descheduled between its reading and the lock
		s.mu.Unlock()
		if got != v {
			t.Fatalf("a stale reading gave %d, want the last value %d", got, v)
		}
		m.Advance(10 * time.Millisecond)
		if st := s.Status(); st.Held != time.Hour || st.StepsBack != 0 || st.StepsForward != 1 || st.UnixNano != at(20*time.Millisecond) {
			t.Fatalf("after a stale reading: %+v, want nothing but time passed", st)
		}
	})
	t.Run("held from the start", func(t *testing.T) {
		m := NewManual(start)
		s, err := NewSlewing(m, SlewConfig{HoldForward: hold, StartHeld: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := s.UnixNano(), at(-time.Hour); got != want {
			t.Fatalf("at the start: %d, want an hour behind the wall clock %d", got, want)
		}
		m.Advance(time.Second)
		m.StepBack(time.Hour) // the wall clock corrected
		if got, want := s.UnixNano(), at(time.Second-time.Hour); got != want {
			t.Fatalf("after the correction: %d, want %d", got, want)
		}
		if st := s.Status(); st.Held != 0 || st.Slewing {
			t.Fatalf("after the correction: %+v", st)
		}
	})
}

func TestSlewingStatus(t *testing.T) {
	m := NewManual(start)
	s, err := NewSlewing(m, SlewConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m.StepBack(4 * time.Second)
	m.StepForward(time.Second)
	st := s.Status()
	want := SlewStatus{
		UnixNano:     start.UnixNano(),
		Wall:         start.Add(-3 * time.Second),
		Offset:       3 * time.Second,
		Slewing:      true,
		CatchUp:      6 * time.Second,
		StepsBack:    1, // the two steps between readings count as one
		StepsForward: 0,
		LastStep:     -3 * time.Second,
	}
	if !st.Wall.Equal(want.Wall) {
		t.Fatalf("Wall = %v, want %v", st.Wall, want.Wall)
	}
	st.Wall = want.Wall
	if st != want {
		t.Fatalf("Status() = %+v\nwant       %+v", st, want)
	}
	s.Raise(start.Add(time.Hour).UnixNano())
	s.Raise(start.Add(time.Minute).UnixNano()) // below: not counted
	if st := s.Status(); st.Raises != 1 || st.Offset != time.Hour+3*time.Second {
		t.Fatalf("after Raise: %+v", st)
	}
}

// TestSlewingProperty drives random histories of advances, steps and
// raises and checks, against a reference computed independently, that
// the ID clock never decreases, never reads below a Raise, advances by at
// least (1-BackRate) of the monotonic time between two reads, and never
// runs ahead of both the wall clock and its own monotonic progress.
func TestSlewingProperty(t *testing.T) {
	type op struct {
		Kind uint8
		N    uint32
	}
	backRates := []float64{0.5, 0.1, 0.9, 0.3, 1e-3, 0.999}
	fwdRates := []float64{0, 0.5, 1, 3, 0.01}
	holds := []time.Duration{0, 0, time.Millisecond, time.Second, 10 * time.Minute}
	check := func(ops []op, br, fr, hf uint8) bool {
		cfg := SlewConfig{
			BackRate:    backRates[int(br)%len(backRates)],
			ForwardRate: fwdRates[int(fr)%len(fwdRates)],
			HoldForward: holds[int(hf)%len(holds)],
		}
		m := NewManual(start)
		s, err := NewSlewing(m, cfg)
		if err != nil {
			t.Log(err)
			return false
		}
		slow := 1 - cfg.BackRate
		prev, prevMono := s.UnixNano(), m.Now().Mono
		floor := int64(math.MinInt64)
		for i, o := range ops {
			bound := int64(math.MinInt64) // a value the clock may be lifted to
			switch o.Kind % 6 {
			case 0:
				m.Advance(time.Duration(o.N)) // up to 4.3s
			case 1:
				m.StepBack(time.Duration(o.N) * time.Microsecond) // up to 72m
			case 2:
				m.StepForward(time.Duration(o.N) * time.Microsecond)
			case 3:
				v := m.Now().Wall.UnixNano() + (int64(o.N)-1<<31)*1000 // wall ±36m
				s.Raise(v)
				floor, bound = max(floor, v), v
			case 4:
				// read only
			case 5:
				s.Settle(s.Basis(), time.Duration(o.N%3)*time.Duration(o.N))
			}
			r := m.Now()
			v := s.UnixNano()
			e := int64(r.Mono - prevMono)
			basis := r.Wall.UnixNano() - int64(s.Status().Held)
			switch {
			case v < prev:
				t.Logf("op %d %+v: went back %d -> %d", i, o, prev, v)
				return false
			case v < floor:
				t.Logf("op %d %+v: %d below a raise to %d", i, o, v, floor)
				return false
			case v-prev < floorScale(e, slow):
				t.Logf("op %d %+v: advanced %d in %d, want >= %d", i, o, v-prev, e, floorScale(e, slow))
				return false
			case v > max(basis, prev+e, bound):
				t.Logf("op %d %+v: %d ahead of the wall clock followed %d, own progress %d and raise %d", i, o, v, basis, prev+e, bound)
				return false
			case cfg.HoldForward == 0 && basis != r.Wall.UnixNano():
				t.Logf("op %d %+v: a step held with HoldForward 0", i, o)
				return false
			}
			prev, prevMono = v, r.Mono
		}
		return true
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 2000}); err != nil {
		t.Fatal(err)
	}
}

// TestRateScale checks the exact scaling against big rationals.
func TestRateScale(t *testing.T) {
	rates := []float64{0.5, 0.1, 0.9, 1 - 1e-3, 1e-3, 1.5, 2, 1.01, 1001, 1 - 0.999999, 0x1p-53}
	check := func(d int64, i uint8) bool {
		if d < 0 {
			d = -d
		}
		f := rates[int(i)%len(rates)]
		got, want := newRate(f).scale(d), floorScale(d, f)
		if got != want {
			t.Logf("scale(%d, %v) = %d, want %d", d, f, got, want)
		}
		return got == want
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 20000}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		d    int64
		f    float64
		want int64
	}{
		{"zero", 0, 0.5, 0},
		{"negative", -5, 0.5, 0},
		{"half of odd", 3, 0.5, 1},
		{"saturates", math.MaxInt64, 2, math.MaxInt64},
		{"largest without saturation", math.MaxInt64, 1, math.MaxInt64},
		{"huge times small", math.MaxInt64, 0.1, floorScale(math.MaxInt64, 0.1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := newRate(tc.f).scale(tc.d); got != tc.want {
				t.Fatalf("scale(%d, %v) = %d, want %d", tc.d, tc.f, got, tc.want)
			}
		})
	}
}

// TestSlewingConcurrent reads from many goroutines while another steps
// the wall clock about: every reader must see its values never decrease.
func TestSlewingConcurrent(t *testing.T) {
	m := NewManual(start)
	s, err := NewSlewing(m, SlewConfig{ForwardRate: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			prev := s.UnixNano()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := s.UnixNano()
				if v < prev {
					errs <- errors.New("went back")
					return
				}
				prev = v
			}
		})
	}
	for i := range 5000 {
		m.Advance(time.Duration(i%7) * time.Millisecond)
		switch i % 97 {
		case 0:
			m.StepBack(time.Second)
		case 50:
			m.StepForward(700 * time.Millisecond)
		case 70:
			s.Raise(m.Now().Wall.Add(time.Second).UnixNano())
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
