package workerid

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/mig"
)

// layoutRecord is the ID layout as recorded in etcd.
type layoutRecord struct {
	Epoch      string `json:"epoch"`
	Tick       string `json:"tick"`
	TickBits   int    `json:"tick_bits"`
	WorkerBits int    `json:"worker_bits"`
	SeqBits    int    `json:"seq_bits"`
}

func recordOf(l mig.Layout) layoutRecord {
	return layoutRecord{
		Epoch:      l.Epoch().Format(time.RFC3339Nano),
		Tick:       mig.Tick.String(),
		TickBits:   mig.TickBits,
		WorkerBits: mig.WorkerBits,
		SeqBits:    mig.SeqBits,
	}
}

// diff says how the recorded layout r differs from the configured c.
func (r layoutRecord) diff(c layoutRecord) string {
	var d []string
	if r.Epoch != c.Epoch {
		d = append(d, fmt.Sprintf("epoch %s recorded, %s configured", r.Epoch, c.Epoch))
	}
	if r.Tick != c.Tick || r.TickBits != c.TickBits || r.WorkerBits != c.WorkerBits || r.SeqBits != c.SeqBits {
		d = append(d, fmt.Sprintf("bits %s/%d/%d/%d recorded, %s/%d/%d/%d built in",
			r.Tick, r.TickBits, r.WorkerBits, r.SeqBits, c.Tick, c.TickBits, c.WorkerBits, c.SeqBits))
	}
	return strings.Join(d, "; ")
}

type rangeRecord struct {
	First uint32 `json:"first"`
	Last  uint32 `json:"last"`
}

// checkMetadata records the layout and the datacenter ranges the first
// time and checks them every time after. A worker whose configuration
// disagrees must not start: another epoch would make its IDs collide with
// other workers' in time, and an overlapping range would let two
// datacenters hand out the same worker ID.
func (w *Worker) checkMetadata(ctx context.Context) error {
	want := recordOf(w.cfg.Layout)
	val, err := json.Marshal(want)
	if err != nil {
		return err
	}
	got, err := w.createOrGet(ctx, w.key("layout"), string(val))
	if err != nil {
		return err
	}
	var rec layoutRecord
	if err := json.Unmarshal(got, &rec); err != nil {
		return fmt.Errorf("%w: layout recorded at %s is unreadable: %v", ErrMismatch, w.key("layout"), err)
	}
	if d := rec.diff(want); d != "" {
		return fmt.Errorf("%w: layout at %s: %s", ErrMismatch, w.key("layout"), d)
	}

	all := map[string]Range{w.cfg.Datacenter: w.cfg.Range}
	maps.Copy(all, w.cfg.Others)
	for _, dc := range slices.Sorted(maps.Keys(all)) {
		if err := w.recordRange(ctx, dc, all[dc]); err != nil {
			return err
		}
	}
	return nil
}

// recordRange records dc's range unless it is recorded already, refusing a
// different recorded range or one that overlaps another datacenter's. The
// write is guarded by the revision of every datacenter key, so two
// datacenters registering overlapping ranges at once cannot both succeed.
func (w *Worker) recordRange(ctx context.Context, dc string, r Range) error {
	prefix := w.key("datacenters") + "/"
	for attempt := 0; ; attempt++ {
		cctx, cancel := w.callCtx(ctx)
		resp, err := w.cli.Get(cctx, prefix, clientv3.WithPrefix())
		cancel()
		if err != nil {
			return w.etcdErr("reading datacenter ranges", err)
		}
		recorded := false
		for _, kv := range resp.Kvs {
			name := strings.TrimPrefix(string(kv.Key), prefix)
			var rr rangeRecord
			if err := json.Unmarshal(kv.Value, &rr); err != nil {
				return fmt.Errorf("%w: range of datacenter %s at %s is unreadable: %v", ErrMismatch, name, kv.Key, err)
			}
			other := Range(rr)
			switch {
			case name == dc && other != r:
				return fmt.Errorf("%w: datacenter %s has worker range %s in etcd but %s is configured (to change it, stop every worker of %s and delete %s)",
					ErrMismatch, dc, other, r, dc, kv.Key)
			case name == dc:
				recorded = true
			case other.overlaps(r):
				return fmt.Errorf("%w: datacenter %s's range %s overlaps datacenter %s's range %s recorded in etcd",
					ErrMismatch, dc, r, name, other)
			}
		}
		if recorded {
			return nil
		}
		val, _ := json.Marshal(rangeRecord(r))
		cctx, cancel = w.callCtx(ctx)
		tr, err := w.cli.Txn(cctx).
			If(clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", resp.Header.Revision+1)).
			Then(clientv3.OpPut(prefix+dc, string(val))).
			Commit()
		cancel()
		if err != nil {
			return w.etcdErr("recording datacenter range", err)
		}
		if tr.Succeeded {
			w.cfg.Logger.Info("recorded datacenter range", "datacenter", dc, "range", r.String())
			return nil
		}
		if attempt > 10 {
			return fmt.Errorf("workerid: datacenter ranges keep changing under %s; giving up", prefix)
		}
	}
}

// createOrGet creates key with val if it is absent and returns the value
// it holds afterwards.
func (w *Worker) createOrGet(ctx context.Context, key, val string) ([]byte, error) {
	cctx, cancel := w.callCtx(ctx)
	defer cancel()
	tr, err := w.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, w.etcdErr("recording "+key, err)
	}
	if tr.Succeeded {
		return []byte(val), nil
	}
	kvs := tr.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("workerid: %s vanished while being read", key)
	}
	return kvs[0].Value, nil
}
