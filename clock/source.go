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
	// Mono returns monotonic time alone, the same as Now().Mono. On the
	// host's clock it costs about half of Now (one clock read instead of
	// two), which matters where a deadline is checked on every call.
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

// Real is the host's clock. The zero value is not usable; call [NewReal].
// Safe for concurrent use.
type Real struct {
	origin time.Time // carries Go's monotonic reading
}

var _ Source = (*Real)(nil)

// NewReal returns the host's clock; its monotonic origin is the call.
func NewReal() *Real { return &Real{origin: time.Now()} }

// Now implements [Source].
func (r *Real) Now() Reading {
	t := time.Now()
	return Reading{Wall: t.Round(0), Mono: t.Sub(r.origin)}
}

// Mono implements [Source]. time.Since on a time with a monotonic
// reading reads only the monotonic clock.
func (r *Real) Mono() time.Duration { return time.Since(r.origin) }

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
