package lease

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

// TestHedged: a call that hangs is hedged after the delay and the second
// call's answer wins; a fast call is not hedged; both failing returns an
// error; no call outlives Hedged.
func TestHedged(t *testing.T) {
	src := clock.NewReal()
	var calls, running atomic.Int32
	hangFirst := func(ctx context.Context) (int, error) {
		running.Add(1)
		defer running.Add(-1)
		if calls.Add(1) == 1 {
			<-ctx.Done() // a silent member: answers only when cancelled
			return 0, ctx.Err()
		}
		return 2, nil
	}
	v, err := Hedged(t.Context(), src, 10*time.Millisecond, hangFirst)
	if err != nil || v != 2 || calls.Load() != 2 || running.Load() != 0 {
		t.Fatalf("hung first call: %d, %v after %d calls, %d still running", v, err, calls.Load(), running.Load())
	}

	calls.Store(0)
	fast := func(context.Context) (int, error) { calls.Add(1); return 1, nil }
	if v, err := Hedged(t.Context(), src, time.Hour, fast); err != nil || v != 1 || calls.Load() != 1 {
		t.Fatalf("fast call: %d, %v after %d calls", v, err, calls.Load())
	}

	boom := errors.New("boom")
	calls.Store(0)
	slowFail := func(ctx context.Context) (int, error) {
		calls.Add(1)
		<-src.After(20 * time.Millisecond)
		return 0, boom
	}
	if _, err := Hedged(t.Context(), src, 5*time.Millisecond, slowFail); !errors.Is(err, boom) || calls.Load() != 2 {
		t.Fatalf("both failing: %v after %d calls", err, calls.Load())
	}
}
