package clock

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after a generous
// bound; the bound catches a hang, it does not measure speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newManualCoarse(t *testing.T, resolution time.Duration) (*Manual, *Slewing, *Coarse) {
	t.Helper()
	m := NewManual(start)
	s, err := NewSlewing(m, SlewConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCoarse(s, resolution)
	t.Cleanup(c.Close)
	return m, s, c
}

func TestCoarseFollowsSlewing(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resolution time.Duration
	}{
		{"default", 0},
		{"negative means default", -time.Second},
		{"fine", 50 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, s, c := newManualCoarse(t, tc.resolution)
			if got := c.UnixNano(); got != start.UnixNano() {
				t.Fatalf("first value %d, want %d (read synchronously)", got, start.UnixNano())
			}
			m.Advance(5 * time.Millisecond)
			want := start.Add(5 * time.Millisecond).UnixNano()
			waitFor(t, "the cache to advance", func() bool { return c.UnixNano() == want })

			m.StepBack(time.Second)
			m.Advance(10 * time.Millisecond) // slewing: 5ms on
			want = s.UnixNano()
			waitFor(t, "the cache to follow the slew", func() bool { return c.UnixNano() == want })
			if want != start.Add(10*time.Millisecond).UnixNano() {
				t.Fatalf("Slewing reads %d, want start+10ms", want)
			}
		})
	}
}

// TestCoarseNeverDecreases reads from several goroutines while the clock
// is advanced, stepped both ways and raised.
func TestCoarseNeverDecreases(t *testing.T) {
	m, _, c := newManualCoarse(t, 100*time.Microsecond)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	bad := make(chan [2]int64, 2)
	for range 2 {
		wg.Go(func() {
			prev := c.UnixNano()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := c.UnixNano()
				if v < prev {
					bad <- [2]int64{prev, v}
					return
				}
				prev = v
				runtime.Gosched() // leave the CPUs to the writers too
			}
		})
	}
	for i := range 500 {
		m.Advance(time.Duration(i%5) * 100 * time.Microsecond)
		switch i % 101 {
		case 0:
			m.StepBack(50 * time.Millisecond)
		case 40:
			m.StepForward(30 * time.Millisecond)
		case 80:
			c.Raise(m.Now().Wall.Add(20 * time.Millisecond).UnixNano())
		}
		if i%10 == 0 {
			time.Sleep(200 * time.Microsecond) // let the refresher run
		}
	}
	close(stop)
	wg.Wait()
	select {
	case b := <-bad:
		t.Fatalf("went back from %d to %d", b[0], b[1])
	default:
	}
}

func TestCoarseRaiseIsVisibleAtOnce(t *testing.T) {
	// A resolution far longer than the test: only Raise can move it.
	_, _, c := newManualCoarse(t, time.Hour)
	w := start.Add(time.Minute).UnixNano()
	c.Raise(w)
	if got := c.UnixNano(); got != w {
		t.Fatalf("after Raise: %d, want %d", got, w)
	}
}

func TestCoarseRefresh(t *testing.T) {
	m, _, c := newManualCoarse(t, time.Hour)
	m.Advance(time.Second)
	c.Refresh()
	if got, want := c.UnixNano(), start.Add(time.Second).UnixNano(); got != want {
		t.Fatalf("after Refresh: %d, want %d", got, want)
	}
}

func TestCoarseCloseStops(t *testing.T) {
	m, _, c := newManualCoarse(t, 50*time.Microsecond)
	m.Advance(time.Millisecond)
	want := start.Add(time.Millisecond).UnixNano()
	waitFor(t, "the cache to advance", func() bool { return c.UnixNano() == want })

	c.Close()
	select {
	case <-c.done:
	default:
		t.Fatal("Close returned before the goroutine ended")
	}
	c.Close() // idempotent
	m.Advance(time.Second)
	time.Sleep(5 * time.Millisecond) // a hundred resolutions
	if got := c.UnixNano(); got != want {
		t.Fatalf("after Close: %d, want the last value %d", got, want)
	}
}

func TestCoarseAfter(t *testing.T) {
	m, _, c := newManualCoarse(t, time.Hour)
	ch := c.After(time.Second)
	m.Advance(999 * time.Millisecond)
	select {
	case <-ch:
		t.Fatal("After fired early")
	default:
	}
	m.Advance(time.Millisecond)
	<-ch
}

func BenchmarkCoarseUnixNano(b *testing.B) {
	s, err := NewSlewing(NewReal(), SlewConfig{})
	if err != nil {
		b.Fatal(err)
	}
	c := NewCoarse(s, 0)
	defer c.Close()
	var sink int64
	for b.Loop() {
		sink += c.UnixNano()
	}
	_ = sink
}

func BenchmarkCoarseUnixNanoParallel(b *testing.B) {
	s, err := NewSlewing(NewReal(), SlewConfig{})
	if err != nil {
		b.Fatal(err)
	}
	c := NewCoarse(s, 0)
	defer c.Close()
	b.RunParallel(func(pb *testing.PB) {
		var sink int64
		for pb.Next() {
			sink += c.UnixNano()
		}
		_ = sink
	})
}

func BenchmarkSlewingUnixNano(b *testing.B) {
	s, err := NewSlewing(NewReal(), SlewConfig{})
	if err != nil {
		b.Fatal(err)
	}
	var sink int64
	for b.Loop() {
		sink += s.UnixNano()
	}
	_ = sink
}

func BenchmarkRealNow(b *testing.B) {
	r := NewReal()
	var sink time.Duration
	for b.Loop() {
		sink += r.Now().Mono
	}
	_ = sink
}
