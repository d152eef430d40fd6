package workerid

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
)

// watchClaim follows t's claim key until ctx ends, and closes the channel
// it returns once etcd reports the claim deleted by someone else (an
// operator's `etcdctl del`, or the lease revoked, which deletes it).
// Without it the worker would learn of the loss only at its next
// watermark extension or failed renewal, seconds later, while renewals of
// a lease the delete did not touch kept its deadline moving; meanwhile the
// next holder, starting above the watermark, would issue IDs that this
// worker's went on falling below. The watermark rules out a duplicate
// either way; the watch narrows the time in which two holders' IDs can be
// out of order to the watch's delivery.
//
// It runs in a goroutine of its own, which has ended when done is closed:
// opening a watch waits for etcd, and the caller's loop must not.
func (w *Worker) watchClaim(ctx context.Context, t *tenure) (gone, done <-chan struct{}) {
	g, d := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d)
		from := t.claimRev + 1
		for {
			var lost bool
			if lost, from = w.followClaim(ctx, t, from); lost {
				close(g)
				return
			}
			// The watch ended (no leader, compacted, closed): again after
			// a pause, from the revision after the last one seen.
			if clock.Sleep(ctx, w.src, w.cfg.Window/8) != nil {
				return
			}
		}
	}()
	return g, d
}

// followClaim watches t's claim key from revision from until the watch
// ends, and reports whether the claim is gone and the revision to watch
// from next. After a compaction, a read of the key replaces the events it
// missed.
func (w *Worker) followClaim(ctx context.Context, t *tenure, from int64) (gone bool, next int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range w.cli.Watch(wctx, w.workerKey(t.id), clientv3.WithRev(from)) {
		if resp.CompactRevision != 0 {
			return w.claimGone(ctx, t, from)
		}
		if resp.Err() != nil {
			break
		}
		for _, ev := range resp.Events {
			if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != t.claimRev {
				return true, from
			}
		}
		from = max(from, resp.Header.Revision+1)
	}
	return false, from
}

// claimGone reads t's claim key. An error counts as not gone: the lease
// deadline covers an etcd that does not answer.
func (w *Worker) claimGone(ctx context.Context, t *tenure, from int64) (gone bool, next int64) {
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	r, err := w.cli.Get(cctx, w.workerKey(t.id), clientv3.WithKeysOnly())
	if err != nil {
		return false, from
	}
	return len(r.Kvs) == 0 || r.Kvs[0].CreateRevision != t.claimRev, r.Header.Revision + 1
}
