package workerid_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/workerid"
)

// stallClock is the host's clock whose waits a test can stall: while
// stalled, every channel After returns stays open, so the goroutines that
// renew a worker's lease and fence its generator (they wait on After
// between rounds) stop running, as a paused or starved process's do,
// while Mono keeps reading real time and the worker's callers go on.
// Safe for concurrent use.
type stallClock struct {
	*clock.Real
	mu struct {
		sync.Mutex
		stalled bool
		held    []heldWait
	}
}

type heldWait struct {
	at time.Duration // Mono at which the wait ends
	ch chan struct{}
}

func (c *stallClock) After(d time.Duration) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.stalled {
		return c.Real.After(d)
	}
	ch := make(chan struct{})
	c.mu.held = append(c.mu.held, heldWait{at: c.Mono() + d, ch: ch})
	return ch
}

// stall holds every wait started from now on.
func (c *stallClock) stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.stalled = true
}

// release ends the stall: held waits end at their time, at once for those
// whose time has passed.
func (c *stallClock) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.stalled = false
	for _, h := range c.mu.held {
		time.AfterFunc(max(h.at-c.Mono(), 0), func() { close(h.ch) })
	}
	c.mu.held = nil
}

// TestNextFencedAtRequestTime stalls the goroutines of a worker that
// would notice the end of its lease (its renewal loop and its hold loop)
// for longer than the lease's TTL, and cuts it off from etcd, as a
// paused process is (its watch on its claim would see the claim go).
// etcd expires the lease, and a second
// worker with the same one-ID range claims the worker ID and issues. The
// first worker's generator is still running, since nothing stopped it,
// and its watermark window is long, so its ceiling does not stop it
// either: only the deadline check that Next and NextN make at request
// time, after reserving, keeps it from handing out IDs below the new
// holder's, backwards for the worker ID.
func TestNextFencedAtRequestTime(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("tokyo", workerid.Range{First: 5, Last: 5})
	cfg.Window = 30 * time.Second // far beyond the takeover: no ceiling in the way

	src := &stallClock{Real: clock.NewReal()}
	cliA, proxy := proxied(t, srv.Endpoints()[0])
	a, err := workerid.Start(t.Context(), cfg, cliA, src, idClock(t, clock.NewReal()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proxy.Restore()
		src.release()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 2*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	idsA := take(t, a, 1000)
	src.stall()
	proxy.Cut()

	real := clock.NewReal()
	b := startWhenFree(t, "the stalled worker's lease to expire and its ID to be claimed again", 15*time.Second, cli, cfg, real)
	idsB := take(t, b, 1000)
	assertAllAbove(t, idsB, idsA)
	maxB := slices.Max(idsB)

	// The stalled worker has not noticed: nothing fenced it.
	if st := a.Status(); !st.Held || st.WorkerID != 5 || st.Stats.Fences != 0 {
		t.Fatalf("the stalled worker's status %+v: it was fenced, the stall did not hold", st)
	}
	if id, err := a.Next(); !errors.Is(err, workerid.ErrNotHeld) || !errors.Is(err, workerid.ErrUnavailable) {
		t.Fatalf("Next past the deadline = %d, %v; want ErrNotHeld, ErrUnavailable (the new holder issued up to %d)", id, err, maxB)
	}
	if batch, err := a.NextN(10); !errors.Is(err, workerid.ErrNotHeld) {
		t.Fatalf("NextN past the deadline = %d IDs from %d, %v; want ErrNotHeld (the new holder issued up to %d)", batch.Len(), batch.First(), err, maxB)
	}

	// Released, and back on the network, its goroutines fence it.
	proxy.Restore()
	src.release()
	waitFor(t, "the released worker fencing itself", 5*time.Second, func() bool { return a.Status().Stats.Fences == 1 })
	assertAllAbove(t, take(t, b, 1000), idsB)
}

// TestRefusalsAreUnavailable: each refusal of a worker to issue is of the
// ErrUnavailable family, which rpc answers with unavailable, and keeps its
// own sentinel.
func TestRefusalsAreUnavailable(t *testing.T) {
	if !errors.Is(workerid.ErrNotHeld, workerid.ErrUnavailable) {
		t.Error("ErrNotHeld is not of the ErrUnavailable family")
	}
	for _, err := range []error{mig.ErrFenced, mig.ErrCeiling, mig.ErrExhausted, mig.ErrClockRange} {
		if !errors.Is(err, workerid.ErrUnavailable) {
			t.Errorf("%v is not of the ErrUnavailable family", err)
		}
	}
	for _, err := range []error{workerid.ErrConfig, workerid.ErrMismatch, workerid.ErrRangeFull, workerid.ErrUnreachable, workerid.ErrClosed, mig.ErrBatchSize} {
		if errors.Is(err, workerid.ErrUnavailable) {
			t.Errorf("%v is of the ErrUnavailable family", err)
		}
	}

	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("tokyo", workerid.Range{First: 0, Last: 0})
	cfg.Window = 10 * mig.Tick
	cfg.Borrow = mig.Tick
	cfg.NoWait = true
	w := mustStart(t, cli, cfg, clock.NewReal())
	// NoWait: past the borrowed tick, sequence numbers run out at once.
	var err error
	for range 100 {
		if _, err = w.NextN(mig.MaxBatch); err != nil {
			break
		}
	}
	if !errors.Is(err, mig.ErrExhausted) || !errors.Is(err, workerid.ErrUnavailable) {
		t.Fatalf("NextN past the borrow bound with NoWait = %v, want mig.ErrExhausted, ErrUnavailable", err)
	}
	if _, err := w.NextN(0); !errors.Is(err, mig.ErrBatchSize) || errors.Is(err, workerid.ErrUnavailable) {
		t.Fatalf("NextN(0) = %v, want mig.ErrBatchSize alone", err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(); !errors.Is(err, workerid.ErrNotHeld) || !errors.Is(err, workerid.ErrUnavailable) {
		t.Fatalf("Next after Close = %v, want ErrNotHeld, ErrUnavailable", err)
	}
}
