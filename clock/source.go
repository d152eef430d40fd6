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

// Now implements [Source].
func (r *Real) Now() Reading {
	t := time.Now()
	if r.boot {
		return Reading{Wall: t.Round(0), Mono: r.Mono()}
	}
	return Reading{Wall: t.Round(0), Mono: t.Sub(r.origin)}
}

// Mono implements [Source]. On Linux it is a clock_gettime system call
// (x/sys/unix makes it without the vDSO, which Go's own clock reads use);
// see docs/benchmarks.md for its cost.
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
