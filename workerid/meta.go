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

// clusterRecord says which datacenter an etcd cluster belongs to.
type clusterRecord struct {
	Datacenter string `json:"datacenter"`
}

// checkMetadata records the layout, the datacenter the cluster belongs to
// and the datacenters' ranges the first time, and checks them every time
// after. A worker whose configuration disagrees must not start: another
// epoch would make its IDs collide with other workers' in time, and a
// worker of another datacenter, or with other ranges, could hand out a
// worker ID that its own datacenter's cluster hands out too.
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
	return w.checkDatacenters(ctx)
}

// checkDatacenters checks the configuration against what the cluster
// records: the datacenter it belongs to, and every datacenter's range.
// The configuration must name the cluster's datacenter and list every
// recorded datacenter with its recorded range; a configured datacenter
// not recorded yet must not overlap a recorded one, and is recorded (that
// is how a datacenter is added), as is the cluster's datacenter the first
// time. It reports every difference at once.
//
// HAZARD: worker IDs are unique across datacenters only because each
// datacenter's cluster hands out its own range alone. A worker pointed at
// another datacenter's cluster would claim that datacenter's IDs, which
// its own cluster's workers hand out too; a worker that does not know a
// datacenter the cluster records could not see its range overlap.
//
// The write is guarded by the revisions of the cluster key and of every
// datacenter key, so two workers recording at once cannot both succeed
// with different views.
func (w *Worker) checkDatacenters(ctx context.Context) error {
	clusterKey := w.key("cluster")
	prefix := w.key("datacenters") + "/"
	own := w.cfg.Datacenter
	configured := map[string]Range{own: w.cfg.Range}
	maps.Copy(configured, w.cfg.Others)
	for attempt := 0; ; attempt++ {
		cctx, cancel := w.callCtx(ctx)
		resp, err := w.cli.Txn(cctx).Then(clientv3.OpGet(clusterKey), clientv3.OpGet(prefix, clientv3.WithPrefix())).Commit()
		cancel()
		if err != nil {
			return w.etcdErr("reading the cluster's datacenters", err)
		}
		owner := ""
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			var cr clusterRecord
			if err := json.Unmarshal(kvs[0].Value, &cr); err != nil || cr.Datacenter == "" {
				return fmt.Errorf("%w: the cluster's datacenter at %s is unreadable: %q", ErrMismatch, clusterKey, kvs[0].Value)
			}
			owner = cr.Datacenter
		}
		recorded := map[string]Range{}
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			name := strings.TrimPrefix(string(kv.Key), prefix)
			var rr rangeRecord
			if err := json.Unmarshal(kv.Value, &rr); err != nil {
				return fmt.Errorf("%w: range of datacenter %s at %s is unreadable: %v", ErrMismatch, name, kv.Key, err)
			}
			recorded[name] = Range(rr)
		}

		if diffs := w.datacenterDiffs(owner, recorded, configured); len(diffs) > 0 {
			return fmt.Errorf("%w: %s", ErrMismatch, strings.Join(diffs, "; "))
		}
		var puts []clientv3.Op
		if owner == "" {
			val, _ := json.Marshal(clusterRecord{Datacenter: own})
			puts = append(puts, clientv3.OpPut(clusterKey, string(val)))
		}
		var added []string
		for _, dc := range slices.Sorted(maps.Keys(configured)) {
			if _, ok := recorded[dc]; !ok {
				val, _ := json.Marshal(rangeRecord(configured[dc]))
				puts = append(puts, clientv3.OpPut(prefix+dc, string(val)))
				added = append(added, dc+"="+configured[dc].String())
			}
		}
		if len(puts) == 0 {
			return nil
		}
		rev := resp.Header.Revision
		cctx, cancel = w.callCtx(ctx)
		tr, err := w.cli.Txn(cctx).
			If(clientv3.Compare(clientv3.ModRevision(clusterKey), "<", rev+1),
				clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", rev+1)).
			Then(puts...).
			Commit()
		cancel()
		if err != nil {
			return w.etcdErr("recording the cluster's datacenters", err)
		}
		if tr.Succeeded {
			if owner == "" {
				w.cfg.Logger.Info("recorded the cluster's datacenter", "datacenter", own, "key", clusterKey)
			}
			if len(added) > 0 {
				w.cfg.Logger.Info("recorded datacenter ranges", "ranges", strings.Join(added, ","))
			}
			return nil
		}
		if attempt > 10 {
			return fmt.Errorf("workerid: the cluster's datacenters keep changing under %s; giving up", w.key())
		}
	}
}

// datacenterDiffs says how the configuration differs from what the
// cluster records: owner is the cluster's datacenter ("" before the first
// worker), recorded and configured the ranges by datacenter.
func (w *Worker) datacenterDiffs(owner string, recorded, configured map[string]Range) []string {
	own := w.cfg.Datacenter
	prefix := w.key("datacenters") + "/"
	var diffs []string
	if owner != "" && owner != own {
		diffs = append(diffs, fmt.Sprintf("this etcd cluster belongs to datacenter %s (recorded at %s), not %s: a worker of %s must use %s's own cluster",
			owner, w.key("cluster"), own, own, own))
	}
	for _, dc := range slices.Sorted(maps.Keys(recorded)) {
		r := recorded[dc]
		c, ok := configured[dc]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("datacenter %s is recorded with worker range %s but not configured (list it among the other datacenters; if it is gone for good, delete %s%s)",
				dc, r, prefix, dc))
		case c != r:
			diffs = append(diffs, fmt.Sprintf("datacenter %s has worker range %s in etcd but %s is configured (to change it, stop every worker of %s and delete %s%s)",
				dc, r, c, dc, prefix, dc))
		}
	}
	for _, dc := range slices.Sorted(maps.Keys(configured)) {
		if _, ok := recorded[dc]; ok {
			continue
		}
		for _, other := range slices.Sorted(maps.Keys(recorded)) {
			if configured[dc].overlaps(recorded[other]) {
				diffs = append(diffs, fmt.Sprintf("datacenter %s's range %s overlaps datacenter %s's range %s recorded in etcd",
					dc, configured[dc], other, recorded[other]))
			}
		}
	}
	return diffs
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
