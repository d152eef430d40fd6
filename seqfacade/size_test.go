package seqfacade

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
)

// TestPersistedSizeAtDefaults writes every group of the 2^32 uid space at
// default settings, each section's max_seq at 10^9 (a realistic large
// value; the encoding is fixed-width, so any value costs the same), reads
// them back in one range and sums keys and values. Issue 5 requires at
// most 400 KB.
func TestPersistedSizeAtDefaults(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := Config{}.withDefaults()
	s := newEtcdStore(cli, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	before, err := cli.Status(ctx, srv.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	for g := range s.lay.groups {
		m := make([]uint64, s.lay.sectionsIn(g))
		for i := range m {
			m[i] = 1_000_000_000
		}
		if _, err := s.Save(ctx, g, m, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(ctx, cfg.Prefix+"/seq/groups/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var keys, vals, sections int
	for _, kv := range resp.Kvs {
		keys += len(kv.Key)
		vals += len(kv.Value)
		sections += (len(kv.Value) - 1) / 8
	}
	after, err := cli.Status(ctx, srv.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	total := keys + vals
	t.Logf("2^32 uids at defaults: %d sections in %d keys: %d bytes of keys + %d bytes of values = %d bytes (%.1f KB); etcd's database in use grew by %d bytes",
		sections, len(resp.Kvs), keys, vals, total, float64(total)/1000, after.DbSizeInUse-before.DbSizeInUse)
	if len(resp.Kvs) != 336 || sections != 42950 {
		t.Fatalf("%d keys, %d sections: want 336 and 42950", len(resp.Kvs), sections)
	}
	if total > 400_000 {
		t.Fatalf("persisted size %d bytes is over 400 KB", total)
	}
}
