package seqfacade

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/lease"
)

// failFirst is a Store whose first load of every group fails, as a read
// that timed out on a loaded etcd does.
type failFirst struct {
	Store
	mu     sync.Mutex
	failed map[int]bool
}

func (f *failFirst) Load(ctx context.Context, g int, proof []clientv3.Cmp) (GroupState, error) {
	f.mu.Lock()
	first := !f.failed[g]
	f.failed[g] = true
	f.mu.Unlock()
	if first {
		return GroupState{}, fmt.Errorf("reading group %d: %w", g, context.DeadlineExceeded)
	}
	return f.Store.Load(ctx, g, proof)
}

// TestActivationRetried: a group whose background load failed is loaded
// again while it is still the node's, without a call that needs it (it
// used to wait for one; a CI run under -race timed such loads out).
func TestActivationRetried(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	cfg := Config{NodeName: "a", Address: "a.test:7000", Lease: lease.Config{TTL: 2 * time.Second, RequestTimeout: 200 * time.Millisecond},
		Margin: 100 * time.Millisecond, ActivationDelay: 500 * time.Millisecond}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	store := &failFirst{Store: newEtcdStore(cli, cfg), failed: map[int]bool{}}
	n, err := startOn(t.Context(), cfg, cli, store, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 2*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	end := src.Mono() + 20*time.Second
	for {
		st := n.Stats()
		if st.GroupsOwned > 0 && st.GroupsLoaded == int64(st.GroupsOwned) {
			break
		}
		if src.Mono() > end {
			t.Fatalf("after 20s: %d of %d groups loaded, %d loads failed once", st.GroupsLoaded, st.GroupsOwned, len(store.failed))
		}
		if clock.Sleep(t.Context(), src, 50*time.Millisecond) != nil {
			return
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.failed) == 0 {
		t.Fatal("no load failed: the test tested nothing")
	}
}
