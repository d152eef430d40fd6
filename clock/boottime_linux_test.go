//go:build linux

package clock

import (
	"testing"
	"time"
)

// TestRealMonoIsBootTime: on Linux, Real's monotonic time is
// CLOCK_BOOTTIME since the Real was made, so that deadlines count the
// time the host was suspended. Mono and Now().Mono each lie between two
// readings of CLOCK_BOOTTIME taken around them.
func TestRealMonoIsBootTime(t *testing.T) {
	r := NewReal()
	if !r.boot {
		t.Fatal("Real does not read CLOCK_BOOTTIME on Linux")
	}
	for _, read := range []struct {
		name string
		f    func() time.Duration
	}{
		{"Mono", r.Mono},
		{"Now().Mono", func() time.Duration { return r.Now().Mono }},
	} {
		lo, _ := bootNanos()
		got := read.f()
		hi, _ := bootNanos()
		if got < time.Duration(lo-r.boot0) || got > time.Duration(hi-r.boot0) {
			t.Errorf("%s = %v, not between CLOCK_BOOTTIME readings %v and %v", read.name, got, time.Duration(lo-r.boot0), time.Duration(hi-r.boot0))
		}
	}
}

// TestRealMonoRate: while the host is not suspended, CLOCK_BOOTTIME is
// Go's monotonic clock (CLOCK_MONOTONIC) plus a constant. Each reading of
// Mono, bracketed by two of Go's clock, bounds that constant; all the
// bounds must agree, however long the test is descheduled in between.
func TestRealMonoRate(t *testing.T) {
	r := NewReal()
	lo, hi := time.Duration(-1<<63), time.Duration(1<<63-1)
	prev := time.Duration(0)
	for i := range 200 {
		before := time.Since(r.origin)
		m := r.Mono()
		after := time.Since(r.origin)
		if m < prev {
			t.Fatalf("Mono went back from %v to %v", prev, m)
		}
		prev = m
		lo, hi = max(lo, m-after), min(hi, m-before)
		if lo > hi {
			t.Fatalf("reading %d: Mono %v between Go's %v and %v: Mono no longer runs with Go's monotonic clock", i, m, before, after)
		}
		<-r.After(100 * time.Microsecond)
	}
}

// TestRealNowTogether: Now reads the wall clock and CLOCK_BOOTTIME
// together, so wall minus monotonic time does not move between readings
// by anything near Slewing's default step threshold, as it would if a
// reading's two clocks were read far apart (a system call in between
// gives the scheduler and the host room to deschedule the thread).
func TestRealNowTogether(t *testing.T) {
	r := NewReal()
	prev := r.Now()
	worst := time.Duration(0)
	for range 20000 {
		n := r.Now()
		d := n.Wall.Sub(prev.Wall) - (n.Mono - prev.Mono)
		worst = max(worst, d, -d)
		prev = n
	}
	if worst >= DefaultStepThreshold/2 {
		t.Fatalf("wall minus monotonic time moved by %v between two readings", worst)
	}
	t.Logf("wall minus monotonic time moved by %v at most", worst)
}
