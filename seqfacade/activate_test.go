package seqfacade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/lease"
)

// failFirst is a Store whose first read and first write of every group
// fail, as calls that timed out on a loaded etcd do (a write's outcome
// unknown; here, not written).
type failFirst struct {
	*etcdStore
	mu           sync.Mutex
	failed, read map[int]bool // groups whose first write, first read failed
}

// first reports whether this is the first call for g in seen.
func (f *failFirst) first(seen map[int]bool, g int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	first := !seen[g]
	seen[g] = true
	return first
}

func (f *failFirst) Load(ctx context.Context, g int, proof []clientv3.Cmp) (GroupState, error) {
	if f.first(f.read, g) {
		return GroupState{}, fmt.Errorf("reading group %d: %w", g, context.DeadlineExceeded)
	}
	return f.etcdStore.Load(ctx, g, proof)
}

func (f *failFirst) Save(ctx context.Context, g int, maxSeqs []uint64, expect int64, proof []clientv3.Cmp) (int64, error) {
	if f.first(f.failed, g) {
		return 0, fmt.Errorf("writing group %d: %w", g, context.DeadlineExceeded)
	}
	return f.etcdStore.Save(ctx, g, maxSeqs, expect, proof)
}

// oneNode returns a client of a fresh etcd and the config of a routed
// node on it: fast timings, the defaults filled in.
func oneNode(t *testing.T) (*clientv3.Client, Config, clock.Source) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := Config{NodeName: "a", Address: "a.test:7000", Lease: lease.Config{TTL: 2 * time.Second, RequestTimeout: 200 * time.Millisecond},
		Margin: 100 * time.Millisecond, ActivationDelay: 500 * time.Millisecond}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cli, cfg.withDefaults(), clock.NewReal()
}

// startOnStore starts Start's node over store, closed by Cleanup.
func startOnStore(t *testing.T, cfg Config, cli *clientv3.Client, store Store, src clock.Source) *Node {
	n, err := startOn(t.Context(), cfg, cli, store, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 2*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

// TestActivationRetried: a group whose background load failed is loaded
// again while it is still the node's, without a call that needs it (it
// used to wait for one; a CI run under -race timed such loads out).
func TestActivationRetried(t *testing.T) {
	t.Parallel()
	cli, cfg, src := oneNode(t)
	store := &failFirst{etcdStore: newEtcdStore(cli, cfg), failed: map[int]bool{}, read: map[int]bool{}}
	n := startOnStore(t, cfg, cli, store, src)
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
	if len(store.failed) == 0 || len(store.read) == 0 {
		t.Fatalf("%d first writes and %d first reads failed: the test tested too little", len(store.failed), len(store.read))
	}
}

// raceRelease is a Store that, before the first write of group 0,
// writes the group itself (maxes, as a release by its previous owner
// would), and notes whether group 0 was read before that write.
type raceRelease struct {
	*etcdStore
	cli   Store
	maxes []uint64
	mu    sync.Mutex
	read  bool // group 0 read by a load before its first write
	wrote bool
}

func (r *raceRelease) Load(ctx context.Context, g int, proof []clientv3.Cmp) (GroupState, error) {
	if g == 0 {
		r.mu.Lock()
		if !r.wrote {
			r.read = true
		}
		r.mu.Unlock()
	}
	return r.etcdStore.Load(ctx, g, proof)
}

func (r *raceRelease) Save(ctx context.Context, g int, maxSeqs []uint64, expect int64, proof []clientv3.Cmp) (int64, error) {
	if g == 0 {
		r.mu.Lock()
		first := !r.wrote
		r.wrote = true
		r.mu.Unlock()
		if first {
			if _, err := r.cli.Save(ctx, 0, r.maxes, expect, nil); err != nil {
				return 0, fmt.Errorf("the test's own write: %w", err)
			}
		}
	}
	return r.etcdStore.Save(ctx, g, maxSeqs, expect, proof)
}

// TestReadAheadWriteBetween: a group's first load starts from the read
// made by the confirmation that began its tenure, without a read of its
// own; a write of the group between that read and the load's first
// write (a previous owner's late release) fails the load's write, and
// the next load reads the group again: values start above that write.
func TestReadAheadWriteBetween(t *testing.T) {
	t.Parallel()
	cli, cfg, src := oneNode(t)
	direct := newEtcdStore(cli, cfg)
	n0 := newLayout(cfg).sectionsIn(0)
	at := func(v uint64) []uint64 {
		m := make([]uint64, n0)
		for i := range m {
			m[i] = v
		}
		return m
	}
	if _, err := direct.Save(t.Context(), 0, at(500), 0, nil); err != nil {
		t.Fatal(err)
	}
	const late = 1_000_000
	store := &raceRelease{etcdStore: newEtcdStore(cli, cfg), cli: direct, maxes: at(late)}
	n := startOnStore(t, cfg, cli, store, src)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var v uint64
	var err error
	for {
		if v, err = n.Next(ctx, 1); err == nil || ctx.Err() != nil {
			break
		}
		if clock.Sleep(ctx, src, 20*time.Millisecond) != nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if v <= late {
		t.Fatalf("uid 1 got %d: at or below the group's max_seq written before the load's first write (%d)", v, late)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if !store.wrote || store.read {
		t.Fatalf("group 0 read by a load before its first write (%v), or never written (%v): the confirmation's read was not used", store.read, !store.wrote)
	}
}

// TestAheadStates: a read ahead sees what Load would, against a real
// etcd: a group written, its values and revision; a group never written,
// zeros; a group whose key was deleted after it was written, nothing (its
// own load refuses it as corrupt).
func TestAheadStates(t *testing.T) {
	t.Parallel()
	cli, cfg, _ := oneNode(t)
	s := newEtcdStore(cli, cfg)
	n := newLayout(cfg).sectionsIn(0)
	vals := make([]uint64, n)
	for i := range vals {
		vals[i] = uint64(7 + i)
	}
	for g := range 2 {
		if _, err := s.Save(t.Context(), g, vals, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(t.Context(), groupKey(cfg.Prefix, 1)); err != nil {
		t.Fatal(err)
	}
	runs := [][2]int{{0, 2}}
	tr, err := cli.Txn(t.Context()).Then(s.aheadOps(runs)...).Commit()
	if err != nil {
		t.Fatal(err)
	}
	got := s.aheadStates(runs, tr.Responses)
	want0, err := s.Load(t.Context(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := got[0]; !ok || !slices.Equal(st.MaxSeqs, want0.MaxSeqs) || st.Revision != want0.Revision {
		t.Fatalf("group 0 read ahead: %+v, Load: %+v", got[0], want0)
	}
	if _, ok := got[1]; ok {
		t.Fatalf("group 1, its key deleted, read ahead as %+v; Load refuses it", got[1])
	}
	if _, err := s.Load(t.Context(), 1, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load of group 1: %v, want ErrCorrupt", err)
	}
	if st, ok := got[2]; !ok || st.Revision != 0 || slices.ContainsFunc(st.MaxSeqs, func(v uint64) bool { return v != 0 }) {
		t.Fatalf("group 2, never written, read ahead as %+v, want zeros", got[2])
	}
}
