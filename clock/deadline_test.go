package clock

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestDeadlineManual is a history of a deadline on a manual clock: no
// counter window is ever armed, and Live is exactly Headroom() > 0.
func TestDeadlineManual(t *testing.T) {
	m := NewManual(start)
	d := NewDeadline(m, time.Second)
	for i, step := range []struct {
		advance  time.Duration
		do       func()
		headroom time.Duration
	}{
		{0, nil, time.Second},
		{999 * time.Millisecond, nil, time.Millisecond},
		{0, func() { d.Extend(500 * time.Millisecond) }, time.Millisecond}, // earlier: kept
		{time.Millisecond, nil, 0},                                         // at the deadline: over
		{time.Millisecond, nil, -time.Millisecond},
		{0, func() { d.Extend(2 * time.Second) }, 999 * time.Millisecond}, // extended after passing
		{0, func() { m.StepBack(time.Hour) }, 999 * time.Millisecond},     // wall steps do not count
		{998 * time.Millisecond, nil, time.Millisecond},
		{0, d.End, 0},
		{0, func() { d.Extend(time.Hour) }, 0}, // ended for good
		{time.Second, nil, 0},
	} {
		m.Advance(step.advance)
		if step.do != nil {
			step.do()
		}
		if d.win.Load() != nil {
			t.Fatalf("step %d: a counter window on a manual clock", i)
		}
		if got := d.Headroom(); got != step.headroom {
			t.Fatalf("step %d: Headroom %v, want %v", i, got, step.headroom)
		}
		if got, want := d.Live(), step.headroom > 0; got != want {
			t.Fatalf("step %d: Live %v, want %v", i, got, want)
		}
	}
	if !d.Ended() || d.At() != 2*time.Second {
		t.Fatalf("Ended %v, At %v; want true, 2s", d.Ended(), d.At())
	}
}

// TestDeadlineSources: only the host's clock (directly or under a
// Skewed) gets the counter.
func TestDeadlineSources(t *testing.T) {
	r := NewReal()
	for _, tc := range []struct {
		name string
		src  Source
		tsc  *tscClock
	}{
		{"manual", NewManual(start), nil},
		{"skewed manual", NewSkewed(NewManual(start), time.Second), nil},
		{"real", r, r.tsc},
		{"skewed real", NewSkewed(r, -time.Hour), r.tsc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewDeadline(tc.src, time.Hour).tsc; got != tc.tsc {
				t.Fatalf("tsc %p, want %p", got, tc.tsc)
			}
		})
	}
}

// fastReal returns a Real clock whose counter can be used, or skips.
func fastReal(t *testing.T) *Real {
	t.Helper()
	r := NewReal()
	if r.tsc == nil || !kernelUsesTSC() {
		t.Skip("no usable time-stamp counter here (needs linux/amd64, RDTSCP, an invariant counter, clocksource tsc)")
	}
	return r
}

// armed waits for d's counter window, which the first deadline on a Real
// gets once calibration has run tscMinSpan.
func armed(t *testing.T, d *Deadline) *tscWindow {
	t.Helper()
	var w *tscWindow
	waitFor(t, "a counter window", func() bool { w = d.win.Load(); return w != nil })
	return w
}

// TestDeadlineRealAgrees checks the fast check against the monotonic
// clock over a whole window: a counter reading inside the window always
// comes before the deadline (read the monotonic clock first, then the
// counter), and the window closes no earlier than the share of the time
// left it is armed for, less calibration error. Live agrees with the
// monotonic clock throughout, and after the deadline.
func TestDeadlineRealAgrees(t *testing.T) {
	r := fastReal(t)
	const ahead = 200 * time.Millisecond
	d := NewDeadline(r, r.Mono()+ahead)
	armed(t, d)
	d.Extend(r.Mono() + ahead) // re-arm now, calibrated
	armedAt := r.Mono()
	w := d.win.Load()
	if w == nil {
		t.Fatal("no window after re-arming a calibrated clock")
	}
	at := d.At()
	closes := armedAt + time.Duration(float64(at-armedAt)*tscShare)
	var lastIn, firstOut time.Duration
	for i := 0; ; i++ {
		m0 := r.Mono()
		in := w.holds(readTSC())
		live := d.Live()
		m1 := r.Mono()
		if in && m0 >= at {
			t.Fatalf("counter inside the window at %v, deadline %v", m0, at)
		}
		if live && m0 >= at {
			t.Fatalf("Live at %v, deadline %v", m0, at)
		}
		if !live && m1 < at {
			t.Fatalf("not Live at %v, before the deadline %v", m1, at)
		}
		if in {
			lastIn = m0
		} else if firstOut == 0 {
			firstOut = m1
		}
		if m0 > at+10*time.Millisecond {
			break
		}
		if i%64 == 0 {
			runtime.Gosched()
		}
	}
	if firstOut == 0 || firstOut < lastIn {
		t.Fatalf("window never closed, or reopened: last inside %v, first outside %v", lastIn, firstOut)
	}
	// Early only by the share it leaves out: allow 5% of calibration
	// error and scheduling.
	if early := closes - firstOut; early > (at-armedAt)/20 {
		t.Fatalf("window closed at %v, %v before %v (%v of the deadline %v)", firstOut, early, closes, tscShare, at)
	}
	t.Logf("armed at %v for %v: window closed at %v (planned %v)", armedAt, at, firstOut, closes)
}

// TestDeadlineRealEnd: End clears the window at once and for good.
func TestDeadlineRealEnd(t *testing.T) {
	r := fastReal(t)
	d := NewDeadline(r, r.Mono()+time.Hour)
	armed(t, d)
	if !d.Live() {
		t.Fatal("not live an hour before the deadline")
	}
	d.End()
	d.Extend(r.Mono() + 2*time.Hour)
	d.rearm() // as a late retry timer would
	if d.win.Load() != nil || d.Live() || d.Headroom() != 0 {
		t.Fatalf("after End: window %v, Live %v, Headroom %v", d.win.Load(), d.Live(), d.Headroom())
	}
}

// TestDeadlineRealConcurrent extends, checks and ends from several
// goroutines (for the race detector), and checks that no check passes
// once End has returned.
func TestDeadlineRealConcurrent(t *testing.T) {
	r := NewReal() // with or without the counter
	d := NewDeadline(r, r.Mono()+time.Second)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d.Live()
				_ = d.Headroom()
				runtime.Gosched()
			}
		})
	}
	for range 200 {
		d.Extend(r.Mono() + time.Second)
		time.Sleep(100 * time.Microsecond)
	}
	d.End()
	if d.Live() {
		t.Fatal("Live after End")
	}
	close(stop)
	wg.Wait()
}

func BenchmarkDeadlineLive(b *testing.B) {
	for _, tc := range []struct {
		name string
		src  func() Source
	}{
		{"real", func() Source { return NewReal() }},
		{"manual", func() Source { return NewManual(start) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			src := tc.src()
			d := NewDeadline(src, src.Mono()+time.Hour)
			if d.tsc != nil {
				time.Sleep(2 * tscMinSpan)
				d.Extend(src.Mono() + time.Hour)
				if d.win.Load() == nil {
					b.Log("no counter window: checks read the monotonic clock")
				}
			}
			n := 0
			for b.Loop() {
				if d.Live() {
					n++
				}
			}
			if n != b.N {
				b.Fatalf("%d of %d checks failed", b.N-n, b.N)
			}
		})
	}
}

func BenchmarkRealMono(b *testing.B) {
	r := NewReal()
	var sink time.Duration
	for b.Loop() {
		sink += r.Mono()
	}
	_ = sink
}

func BenchmarkReadTSC(b *testing.B) {
	if !hasTSC() {
		b.Skip("no usable time-stamp counter")
	}
	var sink uint64
	for b.Loop() {
		sink += readTSC()
	}
	_ = sink
}
