package workerid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/mig"
)

// IDClock is the ID clock the worker's generators read (clock.Coarse in
// production): a mig.Clock that can be raised to a floor, which the worker
// does to start above the previous holder's watermark.
type IDClock interface {
	mig.Clock
	Raise(unixNano int64)
}

// Worker holds a worker ID leased from etcd and issues IDs under it. It
// runs one goroutine that extends the watermark, fences the generator when
// the lease ends, and claims again after a loss (the lease runs its own
// renewal goroutine); Close stops them. Safe for concurrent use.
type Worker struct {
	cfg    Config
	cli    *clientv3.Client
	src    clock.Source // monotonic time for deadlines and the loop
	idc    IDClock
	window int64 // watermark window in ticks

	cur   atomic.Pointer[tenure] // nil while no worker ID is held
	stats counters

	// floor is the first tick the next generator may issue: past
	// everything this process issued under any worker ID, so one process's
	// IDs keep increasing across re-claims. Owned by the loop goroutine
	// (and by Start and Close, which run when the loop does not).
	floor int64

	cancel    context.CancelFunc
	loopDone  chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// tenure is one claim of one worker ID under one lease.
type tenure struct {
	id       uint32
	lease    *lease.Lease
	claimRev int64 // CreateRevision of the claim key
	// wmRev is the ModRevision of the watermark key as this tenure last
	// learned it (0: no key). Owned by whoever writes the watermark: begin,
	// then the loop, then Close.
	wmRev   int64
	gen     *mig.Generator
	ceiling *mig.MemCeiling // the watermark known to be persisted
	done    chan struct{}   // closed when the tenure ends
	endOnce sync.Once
}

func (t *tenure) end() { t.endOnce.Do(func() { close(t.done) }) }

// Start checks the cluster metadata, claims a worker ID and starts the
// worker's loop. src supplies monotonic time for lease deadlines; idc is
// the ID clock the generators read.
//
// It returns an error wrapping ErrConfig for an invalid cfg, ErrMismatch
// when cfg disagrees with the layout or ranges recorded in etcd,
// ErrRangeFull when every worker ID of the range is held, or
// ErrUnreachable (naming the endpoints) when etcd does not answer within
// cfg.StartTimeout or ctx.
func Start(ctx context.Context, cfg Config, cli *clientv3.Client, src clock.Source, idc IDClock) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Holder == "" {
		cfg.Holder, _ = os.Hostname()
	}
	w := &Worker{
		cfg:      cfg,
		cli:      cli,
		src:      src,
		idc:      idc,
		window:   int64(cfg.Window / mig.Tick),
		loopDone: make(chan struct{}),
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	t, err := w.first(sctx)
	if err != nil {
		return nil, err
	}
	w.cur.Store(t)
	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = lcancel
	go w.run(lctx, t)
	return w, nil
}

// first checks the metadata and makes the first claim, retrying while etcd
// does not answer, until ctx is done. A configuration etcd refuses, or a
// full range, is returned at once: retrying would not change it.
func (w *Worker) first(ctx context.Context) (*tenure, error) {
	backoff := 100 * time.Millisecond
	for {
		err := w.checkMetadata(ctx)
		if err == nil {
			var t *tenure
			if t, err = w.acquire(ctx); err == nil {
				return t, nil
			}
		}
		if !errors.Is(err, ErrUnreachable) || ctx.Err() != nil {
			return nil, err
		}
		w.cfg.Logger.Warn("etcd did not answer; retrying", "endpoints", w.cli.Endpoints(), "err", err, "retry_in", backoff)
		if clock.Sleep(ctx, w.src, backoff) != nil {
			return nil, err
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Next returns a new ID. Every refusal wraps ErrUnavailable: ErrNotHeld
// while no worker ID is held or once the lease's deadline has passed
// (with mig.ErrFenced when the generator was stopped), ErrClockUnsafe
// while Config.ClockCheck says so, or the generator's mig.ErrCeiling,
// mig.ErrExhausted or mig.ErrClockRange.
func (w *Worker) Next() (mig.ID, error) {
	t := w.cur.Load()
	if t == nil {
		return 0, ErrNotHeld
	}
	if err := w.checkClock(); err != nil {
		return 0, err
	}
	id, err := t.gen.Next()
	if err != nil {
		return 0, t.refused(err)
	}
	if !t.lease.Valid() { // HAZARD: see NextN
		return 0, t.expired()
	}
	return id, nil
}

// NextN reserves n IDs at once; errors are those of Next plus
// mig.ErrBatchSize, which is not a refusal but a bad n.
func (w *Worker) NextN(n int) (mig.Batch, error) {
	t := w.cur.Load()
	if t == nil {
		return mig.Batch{}, ErrNotHeld
	}
	if err := w.checkClock(); err != nil {
		return mig.Batch{}, err
	}
	b, err := t.gen.NextN(n)
	if err != nil {
		return mig.Batch{}, t.refused(err)
	}
	// HAZARD: the lease's deadline is checked here, by reading the clock
	// after the generator reserved the IDs, and not only by the generator
	// being stopped: that takes the lease's and the hold loop's goroutines,
	// which a process paused past its TTL (SIGSTOP, a VM freeze) or
	// starved may not have run when it serves again, after etcd has
	// expired the lease and a new holder has issued above this tenure's
	// watermark. If the check passes, the reservation happened before the
	// deadline, hence before etcd could expire the lease, hence before
	// any new holder issued; if it fails, the reserved IDs are skipped,
	// never handed out (the floor and the final watermark are above them
	// anyway). Checking before reserving would not do: the pause can fall
	// between the check and the reservation.
	if !t.lease.Valid() {
		return mig.Batch{}, t.expired()
	}
	return b, nil
}

// checkClock asks Config.ClockCheck, if any, before anything is reserved.
func (w *Worker) checkClock() error {
	if w.cfg.ClockCheck == nil {
		return nil
	}
	if err := w.cfg.ClockCheck.CheckClock(); err != nil {
		return fmt.Errorf("%w: %w", ErrClockUnsafe, err)
	}
	return nil
}

// refused explains a generator's refusal to issue under t.
func (t *tenure) refused(err error) error {
	if errors.Is(err, mig.ErrFenced) {
		return fmt.Errorf("%w: %w", ErrNotHeld, err)
	}
	return err
}

// expired is the error of a call that reserved IDs under t after its
// lease's deadline.
func (t *tenure) expired() error {
	return fmt.Errorf("%w: the lease of worker ID %d passed its deadline as IDs were reserved; they are skipped", ErrNotHeld, t.id)
}

// Done returns a channel closed when the current claim ends (fenced,
// lost or closed); a closed channel if none is held.
func (w *Worker) Done() <-chan struct{} {
	if t := w.cur.Load(); t != nil {
		return t.done
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// Layout returns the ID layout the worker issues in.
func (w *Worker) Layout() mig.Layout { return w.cfg.Layout }

// Datacenter returns the worker's datacenter.
func (w *Worker) Datacenter() string { return w.cfg.Datacenter }

// run holds the current claim until it ends, then claims again, until
// Close.
func (w *Worker) run(ctx context.Context, t *tenure) {
	defer close(w.loopDone)
	for {
		w.hold(ctx, t)
		if ctx.Err() != nil {
			return // Close takes it from here
		}
		_ = w.release(ctx, t)
		backoff := 100 * time.Millisecond
		for {
			if clock.Sleep(ctx, w.src, backoff) != nil {
				return
			}
			nt, err := w.acquire(ctx)
			if err == nil {
				t = nt
				w.cur.Store(t)
				break
			}
			w.cfg.Logger.Warn("claiming a worker ID failed; retrying", "datacenter", w.cfg.Datacenter, "err", err, "retry_in", backoff)
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// hold keeps t: it extends the watermark ahead of the clock and fences t
// when its lease ends (the self-fencing deadline passed, or etcd says the
// lease is gone) or the claim is found gone, by a watermark write or by
// the watch on the claim (watchClaim). It returns when t has ended or ctx
// is done.
func (w *Worker) hold(ctx context.Context, t *tenure) {
	poll := w.cfg.Window / 8
	wctx, stopWatch := context.WithCancel(ctx)
	gone, watchDone := w.watchClaim(wctx, t)
	defer func() {
		stopWatch()
		<-watchDone
	}()
	for {
		wait := poll
		// Not while the clock is unsafe: it issues nothing then, and an ID
		// clock that followed a wrong wall clock would persist the
		// watermark as far ahead, dating every later ID of the worker ID
		// by it. The check is looked at again soon, so that a worker
		// whose clock turns safe does not refuse for want of watermark.
		switch {
		case !w.needExtend(t):
		case w.checkClock() != nil:
			wait = min(poll, clockRecheck)
		default:
			if lost := w.extend(ctx, t); lost {
				w.fence(t, "the claim is gone from etcd")
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.lease.Done():
			w.fence(t, t.lease.Err().Error())
			return
		case <-gone:
			w.fence(t, "the claim was deleted from etcd (by an operator, or its lease revoked)")
			return
		case <-w.src.After(wait):
		}
	}
}

// clockRecheck is how soon hold looks at an unsafe clock again.
const clockRecheck = 50 * time.Millisecond

// needExtend reports whether less than half the watermark window is left.
func (w *Worker) needExtend(t *tenure) bool {
	return t.ceiling.Ceiling()-w.nowTick() < w.window/2
}

func (w *Worker) nowTick() int64 { return w.cfg.Layout.TickOf(w.idc.UnixNano()) }

// extend persists W' = now + Window under the claim and only then raises
// the generator's ceiling. A write whose outcome is unknown leaves the
// ceiling where it was, which is safe: if it lands, now or later, the
// persisted value is higher, and a late one cannot undo a later write
// (writeWatermark). It reports whether the claim is gone.
func (w *Worker) extend(ctx context.Context, t *tenure) (lost bool) {
	wm := w.nowTick() + w.window
	if wm <= t.ceiling.Ceiling() {
		return false // the ID clock is behind the ceiling's time; nothing to extend
	}
	cctx, cancel := t.lease.CallContext(ctx)
	defer cancel()
	ok, err := w.writeWatermark(cctx, t, wm)
	switch {
	case err != nil:
		w.stats.watermarkFailures.Add(1)
		return false
	case !ok:
		return true
	}
	t.ceiling.Raise(wm)
	return false
}

// writeWatermark persists tick as t's watermark in a transaction that
// proves the claim still holds: the claim key exists with the creation
// revision of this claim, so the lease that carries it is alive and this
// worker still holds the ID. ok is false when the proof failed.
//
// HAZARD: the transaction also requires the watermark key to be as t last
// learned it (t.wmRev). A write whose outcome was not learned (its call
// timed out) may still be applied later, after writes made since: without
// this comparison it would put the older, lower watermark back under
// ticks already issued, and the next holder would issue them again.
// With it, a write applies only over the revision its writer last
// learned: a late one fails. When the comparison fails because an earlier
// write of this tenure did land, the transaction reads the key's
// revision, and the write is made again over it. The caller bounds the
// call with ctx.
func (w *Worker) writeWatermark(ctx context.Context, t *tenure, tick int64) (ok bool, err error) {
	val, _ := json.Marshal(watermarkRecord{Tick: tick, Time: w.cfg.Layout.TickTime(tick).Format(time.RFC3339Nano)})
	claimKey, wmKey := w.workerKey(t.id), w.watermarkKey(t.id)
	for {
		tr, err := w.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(claimKey), "=", t.claimRev),
				clientv3.Compare(clientv3.ModRevision(wmKey), "=", t.wmRev)).
			Then(clientv3.OpPut(wmKey, string(val))).
			Else(clientv3.OpGet(claimKey, clientv3.WithKeysOnly()), clientv3.OpGet(wmKey, clientv3.WithKeysOnly())).
			Commit()
		if err != nil {
			return false, err
		}
		if tr.Succeeded {
			t.wmRev = tr.Header.Revision
			w.stats.watermarkWrites.Add(1)
			return true, nil
		}
		claim := tr.Responses[0].GetResponseRange().Kvs
		if len(claim) == 0 || claim[0].CreateRevision != t.claimRev {
			return false, nil
		}
		// An earlier write of this tenure landed after all (or an
		// operator wrote the key, which the write then overwrites).
		var rev int64
		if kvs := tr.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			rev = kvs[0].ModRevision
		}
		if rev == t.wmRev {
			return false, fmt.Errorf("workerid: watermark of worker ID %d: the comparison failed and the key is unchanged", t.id)
		}
		t.wmRev = rev
		w.stats.watermarkLateWrites.Add(1)
	}
}

// fence ends t: the generator stops (atomically with any call in flight)
// and callers get ErrNotHeld until a new claim.
func (w *Worker) fence(t *tenure, why string) {
	last := t.gen.Stop()
	w.floor = max(w.floor, last+1)
	w.cur.CompareAndSwap(t, nil)
	t.end()
	w.stats.fences.Add(1)
	w.cfg.Logger.Warn("fenced: stopped issuing IDs", "worker_id", t.id, "reason", why, "last_tick", last)
}

// release stops t's lease and revokes it, best effort, so the ID is free
// at once rather than at the lease's expiry.
func (w *Worker) release(ctx context.Context, t *tenure) error {
	s := t.lease.Stats()
	w.stats.renewals.Add(s.Renewals)
	w.stats.renewalFailures.Add(s.RenewalFailures)
	return t.lease.Close(ctx)
}

// Close stops the worker. If it holds a worker ID it stops the generator,
// persists the highest tick issued as the watermark (so a restart resumes
// right above it), and revokes the lease so the ID is free at once. Close
// is idempotent; it returns the first error from those etcd calls.
func (w *Worker) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.cancel()
		<-w.loopDone
		t := w.cur.Swap(nil)
		if t == nil {
			return
		}
		last := t.gen.Stop()
		defer t.end()
		// HAZARD: persisting last lowers the watermark from now + Window to
		// the last tick issued. That is safe only because Stop is atomic
		// with issuing: nothing above last was or will be issued.
		cctx, cancel := w.callCtx(ctx)
		ok, err := w.writeWatermark(cctx, t, last)
		cancel()
		if err == nil && !ok {
			err = errors.New("workerid: claim lost before the final watermark was written")
		}
		w.closeErr = errors.Join(err, w.release(ctx, t))
		w.cfg.Logger.Info("released worker ID", "worker_id", t.id, "watermark_tick", last, "err", w.closeErr)
	})
	return w.closeErr
}

// Status is a snapshot of a worker, for metrics and readiness.
type Status struct {
	Held       bool
	WorkerID   uint32
	Datacenter string
	Lease      int64
	// DeadlineHeadroom is the time left before the worker fences itself.
	DeadlineHeadroom time.Duration
	// Watermark is the persisted watermark tick; WatermarkHeadroom is how
	// far ahead of the ID clock it is.
	Watermark         int64
	WatermarkHeadroom time.Duration
	Stats             Stats
}

// Stats are a worker's counters since Start.
type Stats struct {
	Claims, Renewals, RenewalFailures, Fences, WatermarkWrites, WatermarkFailures uint64
	// WatermarkLateWrites counts the watermark writes that found the key
	// changed since the worker last learned it: a write of its own that
	// landed after its call gave up on it, or a write by someone else
	// (writeWatermark).
	WatermarkLateWrites uint64
}

type counters struct {
	claims, renewals, renewalFailures, fences, watermarkWrites, watermarkFailures, watermarkLateWrites atomic.Uint64
}

// Status returns a snapshot of the worker.
func (w *Worker) Status() Status {
	s := Status{
		Datacenter: w.cfg.Datacenter,
		Stats: Stats{
			Claims:              w.stats.claims.Load(),
			Renewals:            w.stats.renewals.Load(),
			RenewalFailures:     w.stats.renewalFailures.Load(),
			Fences:              w.stats.fences.Load(),
			WatermarkWrites:     w.stats.watermarkWrites.Load(),
			WatermarkFailures:   w.stats.watermarkFailures.Load(),
			WatermarkLateWrites: w.stats.watermarkLateWrites.Load(),
		},
	}
	t := w.cur.Load()
	if t == nil {
		return s
	}
	s.Held = true
	s.WorkerID = t.id
	s.Lease = int64(t.lease.ID())
	s.DeadlineHeadroom = t.lease.Headroom()
	ls := t.lease.Stats()
	s.Stats.Renewals += ls.Renewals
	s.Stats.RenewalFailures += ls.RenewalFailures
	s.Watermark = t.ceiling.Ceiling()
	s.WatermarkHeadroom = time.Duration(w.cfg.Layout.TickTime(s.Watermark).UnixNano() - w.idc.UnixNano())
	return s
}

type claimRecord struct {
	Datacenter string `json:"datacenter"`
	Holder     string `json:"holder"`
	Lease      string `json:"lease"`
}

type watermarkRecord struct {
	Tick int64  `json:"tick"`
	Time string `json:"time"`
}

func (w *Worker) key(parts ...string) string {
	k := w.cfg.Prefix
	for _, p := range parts {
		k += "/" + p
	}
	return k
}

func (w *Worker) workerKey(id uint32) string    { return w.key("workers", fmt.Sprintf("%02d", id)) }
func (w *Worker) watermarkKey(id uint32) string { return w.key("watermarks", fmt.Sprintf("%02d", id)) }

// callCtx bounds one etcd call.
func (w *Worker) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, w.cfg.RequestTimeout)
}

// etcdErr explains a failed etcd call; when etcd did not answer it wraps
// ErrUnreachable and names the endpoints.
func (w *Worker) etcdErr(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("%w at %v: %s: %w", ErrUnreachable, w.cli.Endpoints(), op, err)
	}
	return fmt.Errorf("workerid: %s: %w", op, err)
}
