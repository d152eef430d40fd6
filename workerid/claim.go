package workerid

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/mig"
)

// acquire grants a lease, claims the lowest free worker ID of the range,
// persists a first watermark and builds the generator. On any failure it
// revokes the lease it granted (best effort) and claims nothing.
func (w *Worker) acquire(ctx context.Context) (*tenure, error) {
	l, err := lease.Grant(ctx, w.cli, w.src, w.cfg.leaseConfig())
	if err != nil {
		return nil, w.etcdErr("granting a lease", err)
	}
	t := &tenure{
		lease:   l,
		ceiling: mig.NewMemCeiling(-1),
		done:    make(chan struct{}),
	}
	prevWatermark, err := w.claim(ctx, t)
	if err == nil {
		err = w.begin(ctx, t, prevWatermark)
	}
	if err != nil {
		_ = w.release(ctx, t)
		return nil, err
	}
	w.stats.claims.Add(1)
	w.cfg.Logger.Info("claimed worker ID", "worker_id", t.id, "datacenter", w.cfg.Datacenter,
		"range", w.cfg.Range.String(), "lease", fmt.Sprintf("%x", int64(l.ID())), "ttl", l.TTL(),
		"start_tick", prevWatermark+1, "watermark_tick", t.ceiling.Ceiling())
	return t, nil
}

// claim takes the lowest free worker ID in the range with a
// create-if-absent transaction bound to t's lease, and reads the ID's
// watermark in the same transaction: the watermark it returns is the last
// one any previous holder can ever have persisted, because their writes
// all require their claim key, which is gone. It returns -1 for an ID that
// never had a watermark.
func (w *Worker) claim(ctx context.Context, t *tenure) (int64, error) {
	cctx, cancel := w.callCtx(ctx)
	resp, err := w.cli.Get(cctx, w.key("workers")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return 0, w.etcdErr("listing held worker IDs", err)
	}
	held := map[uint32]bool{}
	for _, kv := range resp.Kvs {
		n, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), w.key("workers")+"/"), 10, 32)
		if err == nil {
			held[uint32(n)] = true
		}
	}
	val, _ := json.Marshal(claimRecord{Datacenter: w.cfg.Datacenter, Holder: w.cfg.Holder, Lease: fmt.Sprintf("%x", int64(t.lease.ID()))})
	for id := w.cfg.Range.First; id <= w.cfg.Range.Last; id++ {
		if held[id] {
			continue
		}
		cctx, cancel := w.callCtx(ctx)
		tr, err := w.cli.Txn(cctx).
			If(clientv3.Compare(clientv3.CreateRevision(w.workerKey(id)), "=", 0)).
			Then(clientv3.OpPut(w.workerKey(id), string(val), clientv3.WithLease(t.lease.ID())),
				clientv3.OpGet(w.watermarkKey(id))).
			Commit()
		cancel()
		if err != nil {
			// The outcome is unknown; the caller revokes the lease, which
			// deletes the key if the claim did happen.
			return 0, w.etcdErr(fmt.Sprintf("claiming worker ID %d", id), err)
		}
		if !tr.Succeeded {
			continue // taken since the listing
		}
		t.id = id
		t.claimRev = tr.Header.Revision
		kvs := tr.Responses[1].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return -1, nil
		}
		t.wmRev = kvs[0].ModRevision
		var wm watermarkRecord
		if err := json.Unmarshal(kvs[0].Value, &wm); err != nil {
			// HAZARD: never guess a watermark. An unreadable one makes the
			// ID unusable until an operator repairs it.
			return 0, fmt.Errorf("workerid: watermark of worker ID %d at %s is unreadable (%v); refusing to issue under it", id, kvs[0].Key, err)
		}
		return wm.Tick, nil
	}
	return 0, fmt.Errorf("%w: datacenter %s: all %d worker IDs in %s are held", ErrRangeFull, w.cfg.Datacenter, w.cfg.Range.Len(), w.cfg.Range)
}

// begin starts issuing under a fresh claim: strictly above the previous
// holder's watermark and above anything this process issued, with the ID
// clock raised to that floor and a first watermark persisted before the
// generator exists.
func (w *Worker) begin(ctx context.Context, t *tenure, prevWatermark int64) error {
	start := max(prevWatermark+1, w.floor)
	if start > mig.MaxTick {
		return fmt.Errorf("workerid: worker ID %d's watermark is at the layout's last tick", t.id)
	}
	w.idc.Raise(w.cfg.Layout.TickTime(start).UnixNano())
	now := w.nowTick()
	if w.checkClock() != nil {
		now = start // an unsafe clock persists nothing by it (see hold)
	}
	wm := max(now, start) + w.window
	cctx, cancel := t.lease.CallContext(ctx)
	ok, err := w.writeWatermark(cctx, t, wm)
	cancel()
	if err != nil {
		return w.etcdErr("persisting the first watermark", err)
	}
	if !ok {
		return fmt.Errorf("workerid: claim of worker ID %d lost before its first watermark", t.id)
	}
	t.ceiling.Raise(wm)
	gen, err := mig.New(mig.Config{
		Layout: w.cfg.Layout,
		Worker: t.id,
		Start:  start,
		Borrow: w.cfg.Borrow,
		NoWait: w.cfg.NoWait,
	}, w.idc, t.ceiling)
	if err != nil {
		return err
	}
	t.gen = gen
	return nil
}
