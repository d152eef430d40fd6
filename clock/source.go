package clock

import (
	"context"
	"time"
)

// Reading is a wall-clock and a monotonic reading taken together. A plain
// value, safe for concurrent use.
type Reading struct {
	// Wall is the wall-clock time. It may step back or forward between
	// readings when the host's clock is corrected.
	Wall time.Time
	// Mono is monotonic time since an arbitrary origin fixed for the life of
	// the Source. It never decreases.
	Mono time.Duration
}

// Source tells the time and waits for it to pass. Implementations are safe
// for concurrent use.
type Source interface {
	// Now returns wall and monotonic time read together.
	Now() Reading
	// Mono returns monotonic time alone, the same as Now().Mono, for a
	// deadline checked on every call: it reads one clock where Now reads
	// two.
	Mono() time.Duration
	// After returns a channel that is closed once d of monotonic time has
	// passed. d <= 0 returns a closed channel.
	After(d time.Duration) <-chan struct{}
}

// Sleep waits for d of monotonic time on src or until ctx is done, and
// returns ctx.Err() in the latter case.
func Sleep(ctx context.Context, src Source, d time.Duration) error {
	select {
	case <-src.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Real is the host's clock. Its monotonic time (Mono, and Now().Mono)
// counts the time the host was suspended: on Linux it is CLOCK_BOOTTIME,
// elsewhere Go's monotonic clock (see the package doc for which pauses a
// deadline on it survives). Its waits (After) run on Go's timers, which on
// Linux read CLOCK_MONOTONIC: a wait may end late by the time the host was
// suspended, never early. The zero value is not usable; call [NewReal].
// Safe for concurrent use.
type Real struct {
	origin time.Time // Go's monotonic reading: Mono where boot is false
	boot0  int64     // CLOCK_BOOTTIME at origin, nanoseconds
	boot   bool      // Mono reads CLOCK_BOOTTIME
}

var _ Source = (*Real)(nil)

// NewReal returns the host's clock; its monotonic origin is the call.
func NewReal() *Real {
	r := &Real{origin: time.Now()}
	r.boot0, r.boot = bootNanos()
	return r
}

// Reading the wall clock and CLOCK_BOOTTIME together: they are read one
// after the other, and read again, up to nowAttempts times, when the wall
// clock moved by more than nowMaxGap (or back) from before the first
// reading to after the second.
const (
	nowMaxGap   = 50 * time.Microsecond
	nowAttempts = 8
)

// Now implements [Source]. Its wall and monotonic readings are taken at
// most nowMaxGap (50 µs) apart, however the thread is descheduled, unless
// that happens nowAttempts times in a row: [Slewing] takes a change of
// wall minus monotonic time between readings for a step of the wall
// clock, and must not see one where there was none.
func (r *Real) Now() Reading {
	if !r.boot {
		t := time.Now()
		return Reading{Wall: t.Round(0), Mono: t.Sub(r.origin)}
	}
	var (
		t  time.Time
		ns int64
	)
	for range nowAttempts {
		t = time.Now()
		ns, _ = bootNanos()
		// The wall clock read after CLOCK_BOOTTIME bounds the time since
		// t's wall reading (Go's own two clocks in t are read one after
		// the other too).
		if gap := time.Now().Round(0).Sub(t.Round(0)); gap >= 0 && gap <= nowMaxGap {
			break
		}
	}
	return Reading{Wall: t.Round(0), Mono: time.Duration(ns - r.boot0)}
}

// Mono implements [Source]. On Linux it is a clock_gettime system call
// (Go reads only its own clocks through the vDSO); see docs/benchmarks.md
// for its cost.
func (r *Real) Mono() time.Duration {
	if r.boot {
		ns, _ := bootNanos()
		return time.Duration(ns - r.boot0)
	}
	// time.Since on a time with a monotonic reading reads only the
	// monotonic clock.
	return time.Since(r.origin)
}

// After implements [Source].
func (r *Real) After(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	if d <= 0 {
		close(ch)
		return ch
	}
	time.AfterFunc(d, func() { close(ch) })
	return ch
}

// Runtime is Go's own monotonic clock, read through the vDSO (about 25 ns
// where [Real]'s CLOCK_BOOTTIME takes a system call, 140 ns here). It
// does not count time the host was suspended: it is for measuring and
// pacing (request latencies, connection timeouts), never for a deadline
// that bounds a right to act, which must use [Real]. The zero value is not
// usable; call [NewRuntime]. Safe for concurrent use.
type Runtime struct {
	origin time.Time
}

var _ Source = (*Runtime)(nil)

// NewRuntime returns Go's monotonic clock; its monotonic origin is the
// call.
func NewRuntime() *Runtime { return &Runtime{origin: time.Now()} }

// Now implements [Source].
func (r *Runtime) Now() Reading {
	t := time.Now()
	return Reading{Wall: t.Round(0), Mono: t.Sub(r.origin)}
}

// Mono implements [Source].
func (r *Runtime) Mono() time.Duration { return time.Since(r.origin) }

// After implements [Source].
func (r *Runtime) After(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	if d <= 0 {
		close(ch)
		return ch
	}
	time.AfterFunc(d, func() { close(ch) })
	return ch
}
