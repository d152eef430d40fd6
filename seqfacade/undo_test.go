package seqfacade

import (
	"context"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/lease"
)

// TestTableWrittenBackResetsTenures: an old routing table written back by
// hand names, as the tenures before its groups', tenures whose releases
// (and the handoff state in them) were taken already; kept by the next
// table, they would let a new owner activate at once and serve values
// handed out since. The arbiter sees that the table is not the one it
// last wrote (<prefix>/seq/routing-written), and its next table begins
// every group's tenure afresh, with no previous tenure: every owner waits
// its activation delay and reads its groups.
func TestTableWrittenBackResetsTenures(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	cfg := func(name string) Config {
		return Config{
			NodeName: name, Address: name + ".test:7000",
			SectionSize: 10, GroupSize: 2, UIDLimit: 200, Step: 100,
			Lease:             lease.Config{TTL: 2 * time.Second, RequestTimeout: 300 * time.Millisecond},
			Margin:            200 * time.Millisecond,
			ActivationDelay:   time.Second,
			RebalanceInterval: 100 * time.Millisecond,
			MinLoad:           1e12,
			Cooldown:          time.Millisecond,
		}
	}
	keys := newRouteKeys(cfg("x").withDefaults())
	lay := newLayout(cfg("x").withDefaults())
	var raw []byte // the routing key's value as last read
	read := func() (*table, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		r, err := cli.Txn(ctx).Then(clientv3.OpGet(keys.routing), clientv3.OpGet(keys.written)).Commit()
		if err != nil {
			t.Fatal(err)
		}
		kvs := r.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return nil, ""
		}
		raw = kvs[0].Value
		tbl, err := decodeTable(kvs[0].Value, kvs[0].ModRevision, lay)
		if err != nil {
			t.Fatal(err)
		}
		mark := ""
		if w := r.Responses[1].GetResponseRange().Kvs; len(w) > 0 {
			mark = string(w[0].Value)
		}
		return tbl, mark
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		end := src.Mono() + 20*time.Second
		for !cond() {
			if src.Mono() > end {
				t.Fatalf("%s did not happen within 20s", what)
			}
			<-src.After(20 * time.Millisecond)
		}
	}
	start := func(name string) *Node {
		n, err := Start(t.Context(), cfg(name), cli, src)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.Close(ctx)
		})
		return n
	}

	start("a")
	var old []byte
	waitUntil("a table giving a every group", func() bool {
		tbl, mark := read()
		if tbl == nil || tbl.Owners[0] != "a" || mark != strconv.FormatUint(tbl.Version, 10) {
			return false
		}
		old = raw
		return true
	})
	start("b")
	waitUntil("b given groups, with tenures after a's", func() bool {
		tbl, _ := read()
		for g := range tbl.Owners {
			if tbl.Owners[g] == "b" && tbl.prev[g].Node == "a" {
				return true
			}
		}
		return false
	})
	latest, _ := read()

	// The undo.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, keys.routing, string(old)); err != nil {
		t.Fatal(err)
	}
	var reset *table
	waitUntil("a table written after the undo", func() bool {
		tbl, mark := read()
		if tbl.Version <= latest.Version || mark != strconv.FormatUint(tbl.Version, 10) {
			return false
		}
		reset = tbl
		return true
	})
	t.Logf("latest %+v %v %v\nreset %+v %v %v", latest.Owners, latest.since, latest.prev, reset.Owners, reset.since, reset.prev)
	for g := range reset.Owners {
		if reset.Owners[g] != "" && (reset.since[g] != reset.Version || reset.prev[g] != (tenure{})) {
			t.Fatalf("group %d after the undo: owner %s since %d prev %+v; want a new tenure (since %d) with no previous one",
				g, reset.Owners[g], reset.since[g], reset.prev[g], reset.Version)
		}
	}
}
