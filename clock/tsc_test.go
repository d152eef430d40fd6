package clock

import (
	"math"
	"testing"
	"testing/quick"
	"time"
)

// fakeCounter simulates a counter running at rate ticks per monotonic
// nanosecond; every reading of either clock lets step pass.
type fakeCounter struct {
	now   time.Duration // monotonic time
	tick  float64       // the counter at now
	rate  float64
	step  func() time.Duration
	uses  bool // the kernel's clocksource is the counter
	asked int  // times the clocksource was read
}

func newFakeCounter(rate float64) *fakeCounter {
	return &fakeCounter{now: time.Hour, tick: 1e12, rate: rate, uses: true,
		step: func() time.Duration { return 50 }}
}

func (f *fakeCounter) advance(d time.Duration) {
	f.tick += float64(d) * f.rate
	f.now += d
}

func (f *fakeCounter) clock() *tscClock {
	return &tscClock{
		read:       func() uint64 { f.advance(f.step()); return uint64(f.tick) },
		mono:       func() time.Duration { f.advance(f.step()); return f.now },
		kernelUses: func() bool { f.asked++; return f.uses },
	}
}

func TestTSCWindowHolds(t *testing.T) {
	w := &tscWindow{start: 1000, span: 10}
	for _, tc := range []struct {
		t    uint64
		want bool
	}{
		{0, false}, {999, false}, // the counter went back
		{1000, true}, {1009, true},
		{1010, false}, {math.MaxUint64, false},
	} {
		if got := w.holds(tc.t); got != tc.want {
			t.Errorf("holds(%d) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

func TestTSCCalibrationStarts(t *testing.T) {
	f := newFakeCounter(3)
	c := f.clock()
	if w, retry := c.window(f.now + time.Second); w != nil || retry != tscMinSpan {
		t.Fatalf("first use: %v, retry %v; want none, retry %v", w, retry, tscMinSpan)
	}
	f.advance(4 * time.Millisecond)
	if w, retry := c.window(f.now + time.Second); w != nil || retry <= 5*time.Millisecond || retry > 6*time.Millisecond {
		t.Fatalf("4ms in: %v, retry %v; want none, retry about 6ms", w, retry)
	}
	f.advance(6 * time.Millisecond)
	if w, _ := c.window(f.now + time.Second); w == nil {
		t.Fatal("no window after calibrating for 10ms")
	}
}

func TestTSCWindowSpan(t *testing.T) {
	f := newFakeCounter(3)
	c := f.clock()
	c.window(0)
	f.advance(time.Second)
	at := f.now + time.Second
	w, _ := c.window(at)
	if w == nil {
		t.Fatal("no window")
	}
	exact := (float64(at-f.now)*tscShare - float64(tscReorder)) * 3
	if s := float64(w.span); s > exact || s < exact*0.9999 {
		t.Fatalf("span %v ticks, want just under %v", s, exact)
	}
	if uint64(f.tick) < w.start || uint64(f.tick)-w.start > 1000 {
		t.Fatalf("window starts at %d, counter now %d", w.start, uint64(f.tick))
	}
	f.advance(at - f.now) // at the deadline
	if w, _ := c.window(at); w != nil {
		t.Fatalf("a window for a deadline passed: %+v", w)
	}
}

// TestTSCWindowNeverLate is the safety property: however the readings
// are delayed (a reading can be preempted for up to a millisecond), the
// window closes tscReorder before the deadline or earlier, as long as the
// counter's rate against the monotonic clock stays above tscShare of what
// it was.
func TestTSCWindowNeverLate(t *testing.T) {
	prop := func(rate16, calib16, left16, change16 uint16, seed uint32) bool {
		rate := 0.1 + float64(rate16)/math.MaxUint16*10               // 0.1 to 10.1 ticks/ns
		calib := tscMinSpan + time.Duration(calib16)*time.Millisecond // 10ms to 65s
		left := time.Millisecond + time.Duration(left16)*time.Millisecond/8
		change := tscShare*1.0001 + float64(change16)/math.MaxUint16 // to 1.5
		f := newFakeCounter(rate)
		s := seed
		f.step = func() time.Duration { // xorshift: mostly 50ns, sometimes up to 1ms
			s ^= s << 13
			s ^= s >> 17
			s ^= s << 5
			if s%16 == 0 {
				return time.Duration(s % uint32(time.Millisecond))
			}
			return 50
		}
		c := f.clock()
		c.window(0)
		f.advance(calib)
		at := f.now + left
		w, _ := c.window(at)
		if w == nil {
			return true // no window: every check reads Mono
		}
		// From here the counter runs at rate*change: the window closes
		// when it has moved span past start.
		f.rate *= change
		moved := f.tick - float64(w.start)
		closes := f.now + time.Duration((float64(w.span)-moved)/f.rate)
		// A plain RDTSC may read up to tscReorder early: the window
		// must close that much before the deadline.
		return closes+tscReorder <= at
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 20000}); err != nil {
		t.Fatal(err)
	}
}

func TestTSCClocksource(t *testing.T) {
	f := newFakeCounter(3)
	c := f.clock()
	c.window(0)
	f.advance(time.Second)
	if w, _ := c.window(f.now + time.Second); w == nil {
		t.Fatal("no window")
	}
	f.uses = false // the kernel switched clocksource
	asked := f.asked
	f.advance(tscSourceRecheck / 2)
	if w, _ := c.window(f.now + time.Second); w == nil || f.asked != asked {
		t.Fatalf("window %v, clocksource read %d times: want it read at most every %v", w, f.asked-asked, tscSourceRecheck)
	}
	f.advance(tscSourceRecheck / 2)
	if w, retry := c.window(f.now + time.Second); w != nil || retry != 0 {
		t.Fatalf("clocksource not tsc: %+v, retry %v; want none", w, retry)
	}
	for range 10 {
		f.advance(time.Millisecond)
		c.window(f.now + time.Second)
	}
	if got := f.asked - asked; got != 1 {
		t.Fatalf("clocksource read %d times in 110ms, want once", got)
	}
	f.uses = true
	f.advance(tscSourceRecheck)
	if w, _ := c.window(f.now + time.Second); w == nil {
		t.Fatal("no window once the clocksource is tsc again")
	}
}

func TestTSCCounterBack(t *testing.T) {
	f := newFakeCounter(3)
	c := f.clock()
	c.window(0)
	f.advance(time.Second)
	if w, _ := c.window(f.now + time.Second); w == nil {
		t.Fatal("no window")
	}
	f.tick -= 1e10 // the counter went back 3.3s
	f.advance(time.Second)
	if w, retry := c.window(f.now + time.Second); w != nil || retry != 0 {
		t.Fatalf("after the counter went back: %+v, retry %v; want none", w, retry)
	}
	f.advance(tscMinSpan)
	w, _ := c.window(f.now + time.Second)
	if w == nil {
		t.Fatal("no window after calibrating afresh")
	}
	if exact := float64(time.Second) * 3 * tscShare; float64(w.span) > exact || float64(w.span) < exact*0.99 {
		t.Fatalf("span %d after calibrating afresh, want just under %v", w.span, exact)
	}
}

// TestTSCDisagree: a rate since the last arming more than tscDisagree
// away from the long-run rate arms nothing; a smaller change arms a
// window at the lower rate.
func TestTSCDisagree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		factor float64
		armed  bool
	}{
		{"steady", 1, true},
		{"20% slower", 0.8, true},
		{"20% faster", 1.2, true},
		{"30% slower", 0.7, false},
		{"40% faster", 1.4, false},
		{"stopped", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCounter(3)
			c := f.clock()
			c.window(0)
			f.advance(10 * time.Second)
			if w, _ := c.window(f.now + time.Second); w == nil {
				t.Fatal("no window")
			}
			f.rate *= tc.factor
			f.advance(time.Second)
			w, _ := c.window(f.now + time.Second)
			if (w != nil) != tc.armed {
				t.Fatalf("window %+v, want armed %v", w, tc.armed)
			}
			if w == nil {
				return
			}
			// The lower of the long-run rate and the recent one.
			long := (10*3 + 3*tc.factor) / 11
			want := (float64(time.Second)*tscShare - float64(tscReorder)) * min(long, 3*tc.factor)
			if s := float64(w.span); s > want || s < want*0.999 {
				t.Fatalf("span %v, want just under %v", s, want)
			}
		})
	}
}
