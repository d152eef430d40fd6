package seqfacade_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/seqfacade"
)

// sample uids: first and last of the space, section edges, two groups.
var sample = []uint64{1, 2, 99_999, 100_000, 100_001, 12_800_000 - 1, 12_800_000, 1 << 31, 1<<32 - 1}

// TestCleanRestart: a node closed cleanly restarts (same name) and
// serves above everything at once: its earlier incarnation released its
// groups, so the new one does not wait its activation delay (five
// seconds here, so that only the releases explain a quick restart).
func TestCleanRestart(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	cfg := fastConfig("a")
	cfg.Step = 100
	cfg.ActivationDelay, cfg.Margin = 5*time.Second, time.Second

	a := mustServe(t, cli, cfg, src)
	var h history
	for range 250 { // several steps for the first uids
		nextAll(t, a, &h, sample[:2]...)
	}
	nextAll(t, a, &h, sample...)
	vals, err := a.NextBatch(ctxT(t), sample)
	if err != nil {
		t.Fatal(err)
	}
	for k, u := range sample {
		h.add(u, vals[k])
	}
	settled(t, a) // every group loaded, so that every one is handed off
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Next(ctxT(t), 1); !errors.Is(err, seqfacade.ErrClosed) || !isUnavailable(err) {
		t.Fatalf("Next after Close = %v, want ErrClosed and ErrUnavailable", err)
	}

	// Close released every group it served and revoked the lease: the
	// restart registers at once, and serves at once (before its
	// activation delay) since the old incarnation released its tenures.
	begin := src.Mono()
	b := mustServe(t, cli, cfg, src)
	if d := src.Mono() - begin; d >= cfg.ActivationDelay/2 {
		t.Fatalf("restart after a clean close took %v: the activation delay is %v", d, cfg.ActivationDelay)
	}
	assertAbove(t, b, &h)
	// a handed every group off with its state, and b read none of them:
	// all but those whose last write's outcome a did not learn (a write
	// that timed out, on a loaded host), released without their state,
	// which b must read.
	settled(t, b)
	withState, without := releasesOf(t, cli, "a")
	st := b.Stats()
	if st.Handoffs != uint64(withState) || st.GroupLoads != uint64(without) || withState+without != st.GroupsOwned || without > st.GroupsOwned/10 {
		t.Fatalf("restarted node: %d groups read, %d handed off, %d owned; a released %d with their state, %d without: want the first handed off, the others read, and few of those",
			st.GroupLoads, st.Handoffs, st.GroupsOwned, withState, without)
	}
	// A handoff serves once: a group that fails and loads again reads
	// etcd, above everything b handed out from the handoff (several steps
	// for sample[0], so well above the state it was handed off in).
	for range 250 {
		nextAll(t, b, &h, sample[0])
	}
	seqfacade.KillGroupOf(b, sample[0])
	assertAbove(t, b, &h)
	if st := b.Stats(); st.GroupLoads != 1 {
		t.Fatalf("after a group failed: %d groups read, want 1", st.GroupLoads)
	}
	// Every value handed out is at or below what is persisted.
	p := persisted(t, cli, cfg)
	for _, u := range h.uids() {
		if m := p[int(u/seqfacade.DefaultSectionSize)]; h.max(u) > m {
			t.Fatalf("uid %d: %d handed out, persisted max_seq %d", u, h.max(u), m)
		}
	}
}

// TestKillRestart drops a node without Close: its client closes, so it
// can neither renew nor revoke its lease. Its successor (same name) waits
// for etcd to expire the lease, then serves above everything.
func TestKillRestart(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	src := clock.NewReal()
	cfg := fastConfig("a")
	cfg.Step = 1000

	cliA := etcdtest.Client(t, srv.Endpoints()...)
	a := mustServe(t, cliA, cfg, src)
	var h history
	for range 300 {
		nextAll(t, a, &h, sample...)
	}
	killed := src.Mono()
	if err := cliA.Close(); err != nil {
		t.Fatal(err)
	}

	cliB := etcdtest.Client(t, srv.Endpoints()...)
	b := mustServe(t, cliB, cfg, src)
	took := src.Mono() - killed
	t.Logf("successor served %v after the kill (lease TTL 2s)", took)
	if took < 1500*time.Millisecond {
		t.Fatalf("successor served %v after the kill, before the old lease could expire", took)
	}
	// The dropped node fenced itself meanwhile.
	if a.Ready() == nil {
		t.Fatal("dropped node still claims to serve")
	}
	if _, err := a.Next(ctxT(t), 1); !isUnavailable(err) {
		t.Fatalf("dropped node's Next = %v, want ErrUnavailable", err)
	}
	assertAbove(t, b, &h)
	if s := b.Stats(); s.Registrations != 1 {
		t.Fatalf("successor registered %d times", s.Registrations)
	}
}

// TestSameNameWaits: a second process under the same node name does not
// serve while the first holds the name, and takes over above it when the
// first closes.
func TestSameNameWaits(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	a := mustServe(t, cli, fastConfig("a"), src)
	var h history
	nextAll(t, a, &h, sample...)

	b, err := start(t, cli, fastConfig("a"), src)
	if err != nil {
		t.Fatal(err)
	}
	<-src.After(300 * time.Millisecond)
	if b.Ready() == nil {
		t.Fatal("second process serves while the first holds the name")
	}
	_, err = b.Next(ctxT(t), 1)
	if !isUnavailable(err) || !strings.Contains(err.Error(), "/mig/seq/nodes/a") {
		t.Fatalf("second process's Next = %v, want ErrUnavailable naming the registration key", err)
	}
	nextAll(t, a, &h, sample...)
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second process to serve", 5*time.Second, ready(b))
	assertAbove(t, b, &h)
}

// TestActivationDelay: a node serves no earlier than ActivationDelay
// after registering, when no earlier owner released the groups: a call
// meanwhile waits (here past its context) and says it is activating.
func TestActivationDelay(t *testing.T) {
	n, cfg, src, begin := activatingNode(t)
	waitFor(t, "the node to say it is activating", 5*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := n.Next(ctx, 7)
		if !isUnavailable(err) {
			t.Fatalf("Next before activation = %v, want ErrUnavailable", err)
		}
		return strings.Contains(err.Error(), "activating")
	})
	waitFor(t, "activation", 5*time.Second, ready(n))
	if d := src.Mono() - begin; d < cfg.ActivationDelay {
		t.Fatalf("served %v after start, before the activation delay of %v", d, cfg.ActivationDelay)
	}
	if _, err := n.Next(ctxT(t), 7); err != nil {
		t.Fatal(err)
	}
}

// releasesOf counts node's release markers in etcd: those that carry the
// group's state (a handoff) and those that do not.
func releasesOf(t *testing.T, cli *clientv3.Client, node string) (withState, without int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/mig/seq/released/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		var r struct {
			Node  string   `json:"node"`
			Floor []uint64 `json:"floor"`
		}
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			t.Fatalf("release %s: %v", kv.Key, err)
		}
		switch {
		case r.Node != node:
		case len(r.Floor) > 0:
			withState++
		default:
			without++
		}
	}
	return withState, without
}

// activatingNode starts a node with a 900 ms activation delay and no
// earlier owner; it returns the node, its configuration, its clock and
// the time it was started at.
func activatingNode(t *testing.T) (*seqfacade.Node, seqfacade.Config, clock.Source, time.Duration) {
	t.Helper()
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	cfg := fastConfig("a")
	cfg.ActivationDelay, cfg.Margin = 900*time.Millisecond, 150*time.Millisecond
	begin := src.Mono()
	n, err := start(t, cli, cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	return n, cfg, src, begin
}

// TestBatchWaitsForActivation: a NextBatch for groups still activating
// waits for them, as Next does, and answers once they serve (it used to
// answer unavailable at once, so that batches failed for the whole delay
// while single calls were held and answered).
func TestBatchWaitsForActivation(t *testing.T) {
	n, cfg, src, begin := activatingNode(t)
	waitFor(t, "a routing table", 5*time.Second, func() bool { return n.Routing().Version > 0 })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	seqs, err := n.NextBatch(ctx, []uint64{7, 8, 1 << 30})
	if err != nil || len(seqs) != 3 {
		t.Fatalf("NextBatch during activation: %v, %v; want it to wait and answer", seqs, err)
	}
	if d := src.Mono() - begin; d < cfg.ActivationDelay {
		t.Fatalf("answered %v after start, before the activation delay of %v", d, cfg.ActivationDelay)
	}
}

// TestConcurrentOneUID: many goroutines on one uid, with a small step so
// that they keep meeting extensions: every value unique, and each
// caller's increasing.
func TestConcurrentOneUID(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("a")
	cfg.Step = 64
	n := mustServe(t, cli, cfg, clock.NewReal())
	concurrent(t, n, []uint64{42}, 8, 2000)
	// The step doubles for a section extended again within StepPeriod:
	// far fewer writes than one per step of 64, and some callers wait.
	if s := n.Stats(); s.Waits == 0 || s.Writes < 5 {
		t.Fatalf("stats %+v: expected waits and several writes", s)
	}
}

// TestConcurrentManyUIDs: the same over uids of several sections and
// groups, with batches mixed in.
func TestConcurrentManyUIDs(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("a")
	cfg.Step = 32
	n := mustServe(t, cli, cfg, clock.NewReal())
	concurrent(t, n, sample, 6, 1500)
}

// concurrent runs workers goroutines, each taking calls values of random
// uids from uids (every fourth call a batch of all of them), retrying
// calls that etcd's slowness made unavailable (they consume nothing), and
// checks uniqueness per uid and order per caller.
func concurrent(t *testing.T, n *seqfacade.Node, uids []uint64, workers, calls int) {
	t.Helper()
	type rec struct{ uid, v uint64 }
	got := make([][]rec, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for c := range calls {
				if c%4 == 3 && len(uids) > 1 {
					vs, err := patiently(t, func() ([]uint64, error) { return n.NextBatch(t.Context(), uids) })
					if err != nil {
						t.Errorf("NextBatch: %v", err)
						return
					}
					for k, u := range uids {
						got[w] = append(got[w], rec{u, vs[k]})
					}
					continue
				}
				u := uids[r.IntN(len(uids))]
				v, err := patiently(t, func() (uint64, error) { return n.Next(t.Context(), u) })
				if err != nil {
					t.Errorf("Next(%d): %v", u, err)
					return
				}
				got[w] = append(got[w], rec{u, v})
			}
		})
	}
	wg.Wait()
	seen := map[rec]bool{}
	for w := range got {
		last := map[uint64]uint64{}
		for _, r := range got[w] {
			if seen[r] {
				t.Fatalf("uid %d: value %d handed out twice", r.uid, r.v)
			}
			seen[r] = true
			if r.v <= last[r.uid] {
				t.Fatalf("worker %d, uid %d: %d after %d", w, r.uid, r.v, last[r.uid])
			}
			last[r.uid] = r.v
		}
	}
}

func TestBadInputConsumesNothing(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	n := mustServe(t, cli, fastConfig("a"), clock.NewReal())
	var h history
	nextAll(t, n, &h, 5, 6)
	before := n.Stats().Issued
	big := make([]uint64, seqfacade.DefaultMaxBatch+1)
	for i := range big {
		big[i] = uint64(i + 1)
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		want  error
		words []string
	}{
		{"uid 0", func() error { _, err := n.Next(ctxT(t), 0); return err }, seqfacade.ErrInvalidUID, []string{"uid 0"}},
		{"uid at limit", func() error { _, err := n.Next(ctxT(t), 1<<32); return err }, seqfacade.ErrInvalidUID, []string{"4294967296"}},
		{"uid far beyond", func() error { _, err := n.Next(ctxT(t), 1<<63); return err }, seqfacade.ErrInvalidUID, []string{"limit"}},
		{"Current uid 0", func() error { _, err := n.Current(ctxT(t), 0); return err }, seqfacade.ErrInvalidUID, []string{"uid 0"}},
		{"batch too large", func() error { _, err := n.NextBatch(ctxT(t), big); return err }, seqfacade.ErrBatchTooLarge, []string{"1001", "1000"}},
		{"batch with uid 0", func() error { _, err := n.NextBatch(ctxT(t), []uint64{5, 0, 6}); return err }, seqfacade.ErrInvalidUID, []string{"uids[1]", "uid 0"}},
		{"batch beyond limit", func() error { _, err := n.NextBatch(ctxT(t), []uint64{5, 1 << 40}); return err }, seqfacade.ErrInvalidUID, []string{"uids[1]", "1099511627776"}},
		{"batch duplicate", func() error { _, err := n.NextBatch(ctxT(t), []uint64{5, 6, 5}); return err }, seqfacade.ErrDuplicateUID, []string{"uid 5", "uids[0]", "uids[2]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if after := n.Stats().Issued; after != before {
		t.Fatalf("bad input issued %d values", after-before)
	}
	for _, u := range []uint64{5, 6} {
		if c, _ := n.Current(ctxT(t), u); c != h.max(u) {
			t.Fatalf("uid %d: Current %d, last handed out %d", u, c, h.max(u))
		}
	}
	if vs, err := n.NextBatch(ctxT(t), nil); err != nil || len(vs) != 0 {
		t.Fatalf("empty batch = %v, %v", vs, err)
	}
}

func TestConfigMismatchRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	a := mustServe(t, cli, fastConfig("a"), src)
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		mod   func(*seqfacade.Config)
		words []string
	}{
		{"section size", func(c *seqfacade.Config) { c.SectionSize = 200_000 }, []string{"section size 100000 recorded, 200000 configured"}},
		{"group size", func(c *seqfacade.Config) { c.GroupSize = 64 }, []string{"group size 128 recorded, 64 configured"}},
		{"uid limit", func(c *seqfacade.Config) { c.UIDLimit = 1 << 33 }, []string{"uid limit 4294967296 recorded, 8589934592 configured"}},
		{"all three", func(c *seqfacade.Config) { c.SectionSize, c.GroupSize, c.UIDLimit = 10, 2, 1000 }, []string{"section size", "group size", "uid limit", "/mig/seq/config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig("a")
			tc.mod(&cfg)
			_, err := start(t, cli, cfg, src)
			if !errors.Is(err, seqfacade.ErrMismatch) {
				t.Fatalf("Start = %v, want ErrMismatch", err)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Another step is fine, and is what the node uses when it writes.
	// (The group comes first with the room a's release gave it, a's
	// step: unload it, and the load that follows reads and extends it.)
	cfg := fastConfig("a")
	cfg.Step = 77
	n := mustServe(t, cli, cfg, src)
	if _, err := n.Next(ctxT(t), 3); err != nil {
		t.Fatal(err)
	}
	seqfacade.KillGroupOf(n, 3)
	v1, err := n.Next(ctxT(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	if p := persisted(t, cli, cfg)[0]; p != v1-1+77 {
		t.Fatalf("persisted max_seq %d after the first value %d with step 77", p, v1)
	}
	// Another prefix is another cluster.
	cfg = fastConfig("a")
	cfg.Prefix, cfg.SectionSize = "/other", 200_000
	mustServe(t, cli, cfg, src)
}

func TestStartEtcdUnreachable(t *testing.T) {
	srv := etcdtest.Start(t)
	cli, proxy := proxied(t, srv.Endpoints()[0])
	proxy.Cut()
	cfg := fastConfig("a")
	cfg.StartTimeout = time.Second
	src := clock.NewReal()
	begin := src.Mono()
	_, err := start(t, cli, cfg, src)
	if !isUnavailable(err) || !strings.Contains(err.Error(), proxy.Addr()) {
		t.Fatalf("Start with etcd cut = %v, want ErrUnavailable naming %s", err, proxy.Addr())
	}
	if took := src.Mono() - begin; took < cfg.StartTimeout/2 {
		t.Fatalf("Start gave up after %v, without retrying for its start timeout", took)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*seqfacade.Config)
		words []string
	}{
		{"slash in node name", func(c *seqfacade.Config) { c.NodeName = "a/b" }, []string{"node name"}},
		{"relative prefix", func(c *seqfacade.Config) { c.Prefix = "mig" }, []string{"prefix"}},
		{"uid limit 1", func(c *seqfacade.Config) { c.UIDLimit = 1 }, []string{"uid limit 1"}},
		{"section beyond limit", func(c *seqfacade.Config) { c.UIDLimit, c.SectionSize = 100, 1000 }, []string{"section size 1000"}},
		{"too many sections", func(c *seqfacade.Config) { c.SectionSize = 10 }, []string{"429496730 sections"}},
		{"group too large", func(c *seqfacade.Config) { c.GroupSize = seqfacade.MaxGroupSize + 1 }, []string{"group size 4097"}},
		{"negative group", func(c *seqfacade.Config) { c.GroupSize = -1 }, []string{"group size -1"}},
		{"step too large", func(c *seqfacade.Config) { c.Step = seqfacade.MaxStep + 1 }, []string{"step 4294967297"}},
		{"prefetch above 1", func(c *seqfacade.Config) { c.PrefetchFraction = 1.5 }, []string{"prefetch fraction 1.5"}},
		{"prefetch negative", func(c *seqfacade.Config) { c.PrefetchFraction = -0.1 }, []string{"prefetch fraction"}},
		{"batch negative", func(c *seqfacade.Config) { c.MaxBatch = -1 }, []string{"max batch -1"}},
		{"batch huge", func(c *seqfacade.Config) { c.MaxBatch = seqfacade.MaxMaxBatch + 1 }, []string{"max batch"}},
		{"lease TTL", func(c *seqfacade.Config) { c.Lease.TTL = time.Second }, []string{"lease"}},
		{"activation negative", func(c *seqfacade.Config) { c.ActivationDelay = -time.Second }, []string{"activation delay"}},
		{"timeout negative", func(c *seqfacade.Config) { c.RequestTimeout = -time.Second }, []string{"request timeout"}},
		{"right too short", func(c *seqfacade.Config) { c.ActivationDelay = 300 * time.Millisecond }, []string{"does not outlast"}},
		{"homes overlap", func(c *seqfacade.Config) {
			c.Homes, _ = seqfacade.ParseHomes("tokyo=0-200,osaka=150-335")
		}, []string{"overlap"}},
		{"home only without homes", func(c *seqfacade.Config) { c.HomeOnly, c.Datacenter = true, "tokyo" }, []string{"homes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fastConfig("a")
			tc.mod(&c)
			err := c.Validate()
			if !errors.Is(err, seqfacade.ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if err := (seqfacade.Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	// Every problem is listed, not just the first.
	err := seqfacade.Config{GroupSize: -1, Step: 1 << 40, PrefetchFraction: 2}.Validate()
	for _, w := range []string{"group size", "step", "prefetch"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("Validate = %v, want it to list %q too", err, w)
		}
	}
	n, err := seqfacade.New(t.Context(), seqfacade.Config{GroupSize: -1}, nil, nil, nil)
	if n != nil || !errors.Is(err, seqfacade.ErrConfig) {
		t.Fatalf("New with a bad config = %v, %v", n, err)
	}
}
