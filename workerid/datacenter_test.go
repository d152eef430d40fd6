package workerid_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/workerid"
)

// get reads key from etcd, "" when absent.
func get(t *testing.T, cli *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// TestClusterDatacenter: the first worker records its datacenter as the
// cluster's, with every datacenter's range; a later worker is refused,
// with what differs, when it is of another datacenter (an osaka worker
// pointed at tokyo's cluster would claim IDs osaka's own cluster hands out
// too), when it does not list a datacenter the cluster records, or lists
// one with another range. A refused worker records and claims nothing. A
// worker that lists a datacenter not recorded yet records it.
func TestClusterDatacenter(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	tokyo := func(others map[string]workerid.Range) workerid.Config {
		c := fastConfig("tokyo", workerid.Range{First: 0, Last: 15})
		c.Others = others
		return c
	}
	osaka := workerid.Range{First: 16, Last: 31}
	nagoya := workerid.Range{First: 32, Last: 47}

	mustStart(t, cli, tokyo(map[string]workerid.Range{"osaka": osaka}), src)
	if got := get(t, cli, "/mig/cluster"); got != `{"datacenter":"tokyo"}` {
		t.Fatalf("/mig/cluster = %q, want tokyo recorded", got)
	}
	// Adding a datacenter: a worker that lists it records it.
	mustStart(t, cli, tokyo(map[string]workerid.Range{"osaka": osaka, "nagoya": nagoya}), src)
	if got := get(t, cli, "/mig/datacenters/nagoya"); got != `{"first":32,"last":47}` {
		t.Fatalf("/mig/datacenters/nagoya = %q, want 32-47 recorded", got)
	}

	for _, tc := range []struct {
		name  string
		cfg   workerid.Config
		words []string
	}{
		{"a worker of another datacenter", func() workerid.Config {
			c := fastConfig("osaka", osaka)
			c.Others = map[string]workerid.Range{"tokyo": {First: 0, Last: 15}, "nagoya": nagoya}
			return c
		}(), []string{"belongs to datacenter tokyo", "/mig/cluster", "not osaka"}},
		{"no other datacenters", tokyo(nil),
			[]string{"datacenter nagoya is recorded with worker range 32-47 but not configured", "datacenter osaka is recorded with worker range 16-31 but not configured"}},
		{"one other datacenter missing", tokyo(map[string]workerid.Range{"osaka": osaka}),
			[]string{"datacenter nagoya is recorded with worker range 32-47 but not configured", "/mig/datacenters/nagoya"}},
		{"another range for another datacenter", tokyo(map[string]workerid.Range{"osaka": {First: 16, Last: 30}, "nagoya": nagoya}),
			[]string{"datacenter osaka has worker range 16-31 in etcd but 16-30 is configured"}},
		{"a new datacenter over a recorded one", tokyo(map[string]workerid.Range{"osaka": osaka, "fukuoka": {First: 40, Last: 50}}),
			[]string{"nagoya is recorded", "datacenter fukuoka's range 40-50 overlaps datacenter nagoya's range 32-47"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := start(t, cli, tc.cfg, src)
			if !errors.Is(err, workerid.ErrMismatch) {
				t.Fatalf("Start = %v, want ErrMismatch", err)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/mig/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	want := "/mig/cluster /mig/datacenters/nagoya /mig/datacenters/osaka /mig/datacenters/tokyo /mig/layout /mig/watermarks/00 /mig/watermarks/01 /mig/workers/00 /mig/workers/01"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("keys after the refusals:\n%s\nwant\n%s", got, want)
	}
}

// TestClusterDatacenterRace starts the first workers of two datacenters
// on one fresh cluster at once: exactly one of them makes the cluster its
// datacenter's, and the other is refused.
func TestClusterDatacenterRace(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	cfgs := []workerid.Config{
		fastConfig("tokyo", workerid.Range{First: 0, Last: 15}),
		fastConfig("osaka", workerid.Range{First: 16, Last: 31}),
	}
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Go(func() { _, errs[i] = start(t, cli, c, src) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatal("both datacenters' workers started on one cluster")
		case !errors.Is(err, workerid.ErrMismatch):
			t.Fatalf("%s: %v, want ErrMismatch", cfgs[i].Datacenter, err)
		}
	}
	if winner < 0 {
		t.Fatalf("neither started: %v", errs)
	}
	if got, want := get(t, cli, "/mig/cluster"), `{"datacenter":"`+cfgs[winner].Datacenter+`"}`; got != want {
		t.Fatalf("/mig/cluster = %q, want %q", got, want)
	}
}
