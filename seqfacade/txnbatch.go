package seqfacade

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// txnBatcher sends the etcd transactions of concurrent callers, each on
// one group, as one transaction when they meet: each caller's becomes a
// transaction nested in it (etcd evaluates each nested transaction's
// comparisons on their own, so one caller's failed comparison fails only
// its own), and the batch costs one round trip and one raft entry.
//
// A failover gives a node tens of groups at once, each a read and a
// write across sites: sent one by one, at most activations at a time,
// the last waited for several round trips behind the others; sent
// together, in as many batches as were in flight, a round trip each.
//
// No caller waits for a batch it could send: up to txnInFlight batches
// are in flight at once, each sent by a caller whose transaction is in
// it; a caller that finds them all in flight queues its transaction for
// the next, which the first caller to find room sends with every
// transaction queued by then. A lone transaction goes as it is, not
// nested. Two transactions of one group never share a batch (etcd
// refuses a batch that writes one key twice). No goroutine of its own.
// Safe for concurrent use.
type txnBatcher struct {
	cli     *clientv3.Client
	timeout time.Duration // a batch's timeout when a caller's context has no deadline
	// sent counts the etcd transactions sent.
	sent atomic.Uint64

	mu struct {
		sync.Mutex
		queue    []*batchedTxn
		inFlight int
		// freed is closed (and replaced) when a batch returns, to wake
		// the callers waiting for room.
		freed chan struct{}
		// max is the transactions a batch holds: halved when etcd
		// refuses a batch as too large (a cluster run with a smaller
		// --max-txn-ops or request size than etcd's defaults).
		max int
	}
}

const (
	// txnBatchMax is the transactions one batch holds at most: with
	// txnInFlight batches, 128 at once, a failover's groups in one round
	// trip. A batch fails as one (a timeout on a loaded etcd fails every
	// write in it, each of unknown outcome then), so batches stay small.
	// etcd's default --max-txn-ops is 128, and a nested transaction's own
	// operations count against what the batch leaves of it.
	txnBatchMax = 16
	// txnInFlight is the batches in flight at once.
	txnInFlight = 8
	// txnBatchBytes bounds a batch's requests, well under etcd's default
	// request limit (1.5 MiB) and its client's (2 MiB): a batch of groups
	// of thousands of sections each would pass neither.
	txnBatchBytes = 512 << 10
)

// batchedTxn is one caller's transaction: if every comparison holds,
// then, else els.
type batchedTxn struct {
	ctx       context.Context
	group     int
	cmps      []clientv3.Cmp
	then, els []clientv3.Op
	sent      bool // taken into a batch
	resp      *clientv3.TxnResponse
	err       error
	// over is closed when resp or err is set.
	over chan struct{}
}

func newTxnBatcher(cli *clientv3.Client, timeout time.Duration) *txnBatcher {
	b := &txnBatcher{cli: cli, timeout: timeout}
	b.mu.freed = make(chan struct{})
	b.mu.max = txnBatchMax
	return b
}

// txn runs If(cmps).Then(then).Else(els) for group g, batched with the
// concurrent callers' transactions, and returns its response: Succeeded,
// Responses and Header as for a transaction of its own. A context that
// ends first returns its error, with the outcome unknown if the
// transaction was sent.
func (b *txnBatcher) txn(ctx context.Context, g int, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	t := &batchedTxn{ctx: ctx, group: g, cmps: cmps, then: then, els: els, over: make(chan struct{})}
	b.mu.Lock()
	b.mu.queue = append(b.mu.queue, t)
	for !t.sent {
		if ctx.Err() != nil {
			// Never sent: nothing happened, nor will.
			b.removeLocked(t)
			b.mu.Unlock()
			return nil, ctx.Err()
		}
		if b.mu.inFlight < txnInFlight {
			batch := b.takeLocked()
			if len(batch) == 0 {
				continue // every one queued had ended: t too, now sent (finished)
			}
			b.mu.inFlight++
			b.mu.Unlock()
			b.send(batch)
			b.mu.Lock()
			b.mu.inFlight--
			close(b.mu.freed)
			b.mu.freed = make(chan struct{})
			continue
		}
		freed := b.mu.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-t.over:
		case <-ctx.Done():
		}
		b.mu.Lock()
	}
	b.mu.Unlock()
	select {
	case <-t.over:
		return t.resp, t.err
	default:
	}
	select {
	case <-t.over:
		return t.resp, t.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// takeLocked takes the next batch off the queue, in order: up to max
// transactions and txnBatchBytes of requests, at most one of each group
// (a later one of the same group stays for a later batch). A transaction
// whose caller's context has ended is dropped, never sent.
func (b *txnBatcher) takeLocked() []*batchedTxn {
	var batch, rest []*batchedTxn
	seen := map[int]bool{}
	size := 0
	for _, t := range b.mu.queue {
		if err := t.ctx.Err(); err != nil {
			t.sent = true
			b.finish(t, nil, err)
			continue
		}
		n := t.size()
		if len(batch) == b.mu.max || seen[t.group] || (len(batch) > 0 && size+n > txnBatchBytes) {
			rest = append(rest, t)
			continue
		}
		seen[t.group] = true
		size += n
		t.sent = true
		batch = append(batch, t)
	}
	b.mu.queue = rest
	return batch
}

// size is about the bytes t takes in a request.
func (t *batchedTxn) size() int {
	n := 0
	for _, c := range t.cmps {
		n += len(c.KeyBytes()) + 16
	}
	for _, ops := range [][]clientv3.Op{t.then, t.els} {
		for _, op := range ops {
			n += len(op.KeyBytes()) + len(op.ValueBytes()) + 16
		}
	}
	return n
}

func (b *txnBatcher) removeLocked(t *batchedTxn) {
	for i, q := range b.mu.queue {
		if q == t {
			b.mu.queue = append(b.mu.queue[:i], b.mu.queue[i+1:]...)
			return
		}
	}
}

// send runs batch as one transaction and hands each caller its share.
func (b *txnBatcher) send(batch []*batchedTxn) {
	ctx, cancel := b.batchContext(batch)
	defer cancel()
	b.sent.Add(1)
	if len(batch) == 1 {
		t := batch[0]
		resp, err := b.cli.Txn(ctx).If(t.cmps...).Then(t.then...).Else(t.els...).Commit()
		b.finish(t, resp, err)
		return
	}
	ops := make([]clientv3.Op, len(batch))
	for i, t := range batch {
		ops[i] = clientv3.OpTxn(t.cmps, t.then, t.els)
	}
	resp, err := b.cli.Txn(ctx).Then(ops...).Commit()
	if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) || status.Code(err) == codes.ResourceExhausted {
		// Refused whole, before anything was applied: send it again in
		// halves, and hold later batches to that size.
		b.mu.Lock()
		b.mu.max = max(1, min(b.mu.max, len(batch)/2))
		b.mu.Unlock()
		b.send(batch[:len(batch)/2])
		b.send(batch[len(batch)/2:])
		return
	}
	for i, t := range batch {
		if err != nil {
			b.finish(t, nil, err)
			continue
		}
		nested := resp.Responses[i].GetResponseTxn()
		if nested == nil {
			b.finish(t, nil, errors.New("etcd answered a batched transaction without its nested response"))
			continue
		}
		// The batch committed at one revision, its header's (etcd leaves
		// nested headers empty).
		nested.Header = resp.Header
		b.finish(t, (*clientv3.TxnResponse)(nested), nil)
	}
}

// batchContext returns the context a batch is sent under: its first
// caller's values, the latest of the callers' deadlines (b.timeout if one
// has none), and ended once every caller's context has ended.
func (b *txnBatcher) batchContext(batch []*batchedTxn) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(batch[0].ctx)
	var latest time.Time
	bounded := true
	for _, t := range batch {
		d, ok := t.ctx.Deadline()
		bounded = bounded && ok
		if d.After(latest) {
			latest = d
		}
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if bounded {
		ctx, cancel = context.WithDeadline(base, latest)
	} else {
		ctx, cancel = context.WithTimeout(base, b.timeout)
	}
	var mu sync.Mutex
	left := len(batch)
	stops := make([]func() bool, len(batch))
	for i, t := range batch {
		stops[i] = context.AfterFunc(t.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if left--; left == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

func (b *txnBatcher) finish(t *batchedTxn, resp *clientv3.TxnResponse, err error) {
	t.resp, t.err = resp, err
	close(t.over)
}
