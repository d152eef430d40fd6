package seqfacade_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/seqfacade"
)

// harness is what the model test drives: a node, a way to restart it
// (cleanly, or by dropping it without Close), and the persisted max_seq.
type harness interface {
	node() *seqfacade.Node
	restart(t *testing.T, kill bool)
	maxSeq(t *testing.T, sec int) uint64
	// inject makes the next write fail, if the harness can; advance lets
	// retry backoffs pass.
	inject(f failure) bool
	advance()
}

// reference is the model: a plain map of counters, per uid the last value
// handed out (across restarts) and, when known, the value Current must
// return in this incarnation.
type reference struct {
	last  map[uint64]uint64
	cur   map[uint64]uint64
	known map[uint64]bool
}

// runModel applies ops random operations and checks every answer against
// the reference: per uid, values strictly increase across restarts and
// are never reused, each is at most the persisted max_seq of its section,
// Current is the last value handed out (or, after a restart, at least
// it), consecutive values within an incarnation are consecutive numbers,
// and a failed call or batch consumes nothing.
func runModel(t *testing.T, h harness, cfg seqfacade.Config, seed uint64, ops int, kills, faults bool) {
	r := rand.New(rand.NewPCG(seed, 99))
	ref := reference{last: map[uint64]uint64{}, cur: map[uint64]uint64{}, known: map[uint64]bool{}}
	uid := func() uint64 { return 1 + r.Uint64N(cfg.UIDLimit-1) }
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		t.Cleanup(cancel)
		return c
	}
	checkCurrentUnchanged := func(u uint64, why string) {
		if !ref.known[u] {
			return
		}
		c, err := h.node().Current(ctx(), u)
		if err != nil {
			t.Fatalf("seed %d: Current(%d) after %s: %v", seed, u, why, err)
		}
		if c != ref.cur[u] {
			t.Fatalf("seed %d: uid %d: Current %d after %s, want %d (nothing consumed)", seed, u, c, why, ref.cur[u])
		}
	}
	took := func(u, v uint64, what string) {
		if v <= ref.last[u] {
			t.Fatalf("seed %d: %s: uid %d got %d, not above %d", seed, what, u, v, ref.last[u])
		}
		if ref.known[u] && v != ref.cur[u]+1 {
			t.Fatalf("seed %d: %s: uid %d got %d after %d", seed, what, u, v, ref.cur[u])
		}
		if m := h.maxSeq(t, int(u/cfg.SectionSize)); v > m {
			t.Fatalf("seed %d: %s: uid %d got %d above the persisted max_seq %d", seed, what, u, v, m)
		}
		ref.last[u], ref.cur[u], ref.known[u] = v, v, true
	}
	for op := range ops {
		switch k := r.IntN(100); {
		case k < 50:
			u := uid()
			v, err := h.node().Next(ctx(), u)
			if err != nil {
				if !faults || !isUnavailable(err) {
					t.Fatalf("seed %d op %d: Next(%d): %v", seed, op, u, err)
				}
				checkCurrentUnchanged(u, "a failed Next")
				continue
			}
			took(u, v, "Next")
		case k < 65:
			seen := map[uint64]bool{}
			var uids []uint64
			for range 1 + r.IntN(cfg.MaxBatch) {
				if u := uid(); !seen[u] {
					seen[u] = true
					uids = append(uids, u)
				}
			}
			vs, err := h.node().NextBatch(ctx(), uids)
			if err != nil {
				if !faults || !isUnavailable(err) {
					t.Fatalf("seed %d op %d: NextBatch(%v): %v", seed, op, uids, err)
				}
				for _, u := range uids {
					checkCurrentUnchanged(u, "a failed batch")
				}
				continue
			}
			for i, u := range uids {
				took(u, vs[i], "NextBatch")
			}
		case k < 85:
			u := uid()
			c, err := h.node().Current(ctx(), u)
			if err != nil {
				// Current loads a group it needs, and a load raises every
				// section's max_seq: a write that may fail.
				if !faults || !isUnavailable(err) {
					t.Fatalf("seed %d op %d: Current(%d): %v", seed, op, u, err)
				}
				checkCurrentUnchanged(u, "a failed Current")
				continue
			}
			switch {
			case ref.known[u] && c != ref.cur[u]:
				t.Fatalf("seed %d op %d: uid %d: Current %d, last handed out %d", seed, op, u, c, ref.cur[u])
			case c < ref.last[u]:
				t.Fatalf("seed %d op %d: uid %d: Current %d after a restart, below %d handed out before", seed, op, u, c, ref.last[u])
			}
			ref.cur[u], ref.known[u] = c, true
		case k < 88:
			h.restart(t, kills && r.IntN(2) == 0)
			clear(ref.known)
		case k < 94 && faults:
			h.inject(failure(1 + r.IntN(2)))
		case faults:
			h.advance()
		}
	}
	for u := range ref.last {
		checkCurrentUnchanged(u, "the run")
	}
}

// memHarness runs nodes over a memStore with a manual clock: fast, and
// able to inject write failures of unknown outcome.
type memHarness struct {
	cfg   seqfacade.Config
	store *memStore
	clk   *clock.Manual
	own   *testOwner
	n     *seqfacade.Node
	gen   int
}

func newMemHarness(t *testing.T, cfg seqfacade.Config) *memHarness {
	h := &memHarness{cfg: cfg, clk: clock.NewManual(time.Unix(1e9, 0))}
	sections := int((cfg.UIDLimit + cfg.SectionSize - 1) / cfg.SectionSize)
	h.store = &memStore{t: t, groups: map[int]seqfacade.GroupState{}, sectionsIn: func(g int) int {
		return min(cfg.GroupSize, sections-g*cfg.GroupSize)
	}}
	h.start(t)
	return h
}

func (h *memHarness) start(t *testing.T) {
	h.gen++
	id := fmt.Sprint(h.gen)
	h.store.setOwner(id)
	h.own = newTestOwner(id)
	n, err := seqfacade.New(t.Context(), h.cfg, h.store, h.own, h.clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.WithoutCancel(t.Context())) })
	h.n = n
}

func (h *memHarness) node() *seqfacade.Node { return h.n }

func (h *memHarness) restart(t *testing.T, kill bool) {
	if kill {
		h.own.end() // its lease is gone; the node is dropped, not closed
	} else if err := h.n.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.start(t)
}

func (h *memHarness) maxSeq(t *testing.T, sec int) uint64 {
	return h.store.max(sec/h.cfg.GroupSize, sec%h.cfg.GroupSize)
}

func (h *memHarness) inject(f failure) bool { h.store.inject(f); return true }
func (h *memHarness) advance()              { h.clk.Advance(2 * time.Second) }

// TestModel drives random operations, restarts, drops and write failures
// against the reference, over many seeds and shapes.
func TestModel(t *testing.T) {
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 7))
		cfg := seqfacade.Config{
			SectionSize:      1 + r.Uint64N(12),
			GroupSize:        1 + r.IntN(4),
			UIDLimit:         2 + r.Uint64N(60),
			Step:             1 + r.Uint64N(12),
			PrefetchFraction: []float64{0.1, 0.5, 0.9, 1}[r.IntN(4)],
			MaxBatch:         1 + r.IntN(8),
		}
		cfg.SectionSize = min(cfg.SectionSize, cfg.UIDLimit)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runModel(t, newMemHarness(t, cfg), cfg, seed, 600, true, true)
		})
	}
}

// etcdHarness runs nodes from Start against an embedded etcd.
type etcdHarness struct {
	cfg seqfacade.Config
	cli *clientv3.Client
	n   *seqfacade.Node
}

func (h *etcdHarness) node() *seqfacade.Node { return h.n }

func (h *etcdHarness) restart(t *testing.T, _ bool) {
	if err := h.n.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.n = mustServe(t, h.cli, h.cfg, clock.NewReal())
}

func (h *etcdHarness) maxSeq(t *testing.T, sec int) uint64 { return persisted(t, h.cli, h.cfg)[sec] }
func (h *etcdHarness) inject(failure) bool                 { return false }
func (h *etcdHarness) advance()                            {}

// TestModelEtcd is the model test against the real store, with clean
// restarts (TestKillRestart covers drops against etcd).
func TestModelEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("m")
	cfg.SectionSize, cfg.GroupSize, cfg.UIDLimit, cfg.Step, cfg.MaxBatch = 7, 3, 100, 5, 6
	h := &etcdHarness{cfg: cfg, cli: cli, n: mustServe(t, cli, cfg, clock.NewReal())}
	runModel(t, h, cfg, 1, 300, false, false)
}
