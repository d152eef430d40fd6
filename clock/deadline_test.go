package clock

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestDeadlineManual is a history of a deadline on a manual clock: Live is
// exactly Headroom() > 0.
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

// TestDeadlineReal checks Live against the host's clock read before and
// after it: live while the clock read after is before the deadline, not
// live once the clock read before has reached it.
func TestDeadlineReal(t *testing.T) {
	r := NewReal()
	at := r.Mono() + 20*time.Millisecond
	d := NewDeadline(r, at)
	for {
		before := r.Mono()
		live := d.Live()
		after := r.Mono()
		if live && before >= at {
			t.Fatalf("Live at %v, deadline %v", before, at)
		}
		if !live && after < at {
			t.Fatalf("not Live at %v, before the deadline %v", after, at)
		}
		if before > at+5*time.Millisecond {
			return
		}
		<-r.After(100 * time.Microsecond)
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
