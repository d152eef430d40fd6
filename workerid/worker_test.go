package workerid_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdcluster"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/faultproxy"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/workerid"
)

// fastConfig makes failover take about two seconds: the shortest lease
// etcd grants is 2s.
func fastConfig(dc string, r workerid.Range) workerid.Config {
	return workerid.Config{
		Datacenter:     dc,
		Range:          r,
		Layout:         mig.DefaultLayout(),
		TTL:            2 * time.Second,
		Margin:         500 * time.Millisecond,
		RequestTimeout: 300 * time.Millisecond,
		Window:         time.Second,
		StartTimeout:   5 * time.Second,
	}
}

// idClock is a worker's production ID clock over src.
func idClock(t testing.TB, src clock.Source) *clock.Coarse {
	t.Helper()
	s, err := clock.NewSlewing(src, clock.SlewConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := clock.NewCoarse(s, 0)
	t.Cleanup(c.Close)
	return c
}

// start starts a worker that Cleanup closes (before its client closes,
// since Cleanup runs in reverse order).
func start(t testing.TB, cli *clientv3.Client, cfg workerid.Config, src clock.Source) (*workerid.Worker, error) {
	t.Helper()
	w, err := workerid.Start(t.Context(), cfg, cli, src, idClock(t, src))
	if err == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 2*time.Second)
			defer cancel()
			_ = w.Close(ctx)
		})
	}
	return w, err
}

func mustStart(t testing.TB, cli *clientv3.Client, cfg workerid.Config, src clock.Source) *workerid.Worker {
	t.Helper()
	w, err := start(t, cli, cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// proxied returns a client that reaches srv through a fault proxy.
func proxied(t testing.TB, endpoint string) (*clientv3.Client, *faultproxy.Proxy) {
	t.Helper()
	p, err := faultproxy.New(strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return etcdtest.Client(t, "http://"+p.Addr()), p
}

// issued is a record of IDs with the monotonic time each was returned.
type issued struct {
	mu  sync.Mutex
	ids []mig.ID
	at  []time.Duration
}

func (r *issued) add(id mig.ID, at time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	r.at = append(r.at, at)
}

func (r *issued) snapshot() ([]mig.ID, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids), slices.Clone(r.at)
}

// issueUntil calls w.Next in a loop until stop is closed, recording every
// ID and sleeping a little between calls so the record stays small.
func issueUntil(w *workerid.Worker, src clock.Source, rec *issued, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if id, err := w.Next(); err == nil {
			rec.add(id, src.Mono())
		}
		<-src.After(200 * time.Microsecond)
	}
}

func take(t testing.TB, w *workerid.Worker, n int) []mig.ID {
	t.Helper()
	ids := make([]mig.ID, 0, n)
	for len(ids) < n {
		b, err := w.NextN(min(n-len(ids), 10000))
		if err != nil {
			t.Fatal(err)
		}
		ids = b.AppendIDs(ids)
	}
	return ids
}

func assertAllAbove(t testing.TB, later, earlier []mig.ID) {
	t.Helper()
	if len(earlier) == 0 || len(later) == 0 {
		t.Fatalf("nothing to compare: %d earlier, %d later IDs", len(earlier), len(later))
	}
	hi, lo := slices.Max(earlier), slices.Min(later)
	if lo <= hi {
		t.Fatalf("a later ID %d is not above an earlier one %d", lo, hi)
	}
}

func assertUnique(t testing.TB, sets ...[]mig.ID) {
	t.Helper()
	seen := map[mig.ID]bool{}
	for _, s := range sets {
		for _, id := range s {
			if seen[id] {
				t.Fatalf("ID %d issued twice", id)
			}
			seen[id] = true
		}
	}
}

// startWhenFree starts a worker as soon as its range has a free worker ID
// (what names the wait), within the given time.
func startWhenFree(t testing.TB, what string, within time.Duration, cli *clientv3.Client, cfg workerid.Config, src clock.Source) *workerid.Worker {
	t.Helper()
	var w *workerid.Worker
	waitFor(t, what, within, func() bool {
		var err error
		w, err = start(t, cli, cfg, src)
		if err != nil && !errors.Is(err, workerid.ErrRangeFull) {
			t.Fatal(err)
		}
		return err == nil
	})
	return w
}

func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	src := clock.NewReal()
	end := src.Mono() + within
	for !cond() {
		if src.Mono() > end {
			t.Fatalf("%s did not happen within %v", what, within)
		}
		<-src.After(10 * time.Millisecond)
	}
}

func TestRaceForRange(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	cfg := fastConfig("tokyo", workerid.Range{First: 0, Last: 3})
	type result struct {
		w   *workerid.Worker
		err error
	}
	results := make([]result, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			w, err := start(t, cli, cfg, src)
			results[i] = result{w, err}
		})
	}
	wg.Wait()
	held := map[uint32]bool{}
	for _, r := range results {
		if r.err != nil {
			if !errors.Is(r.err, workerid.ErrRangeFull) {
				t.Fatalf("unexpected error: %v", r.err)
			}
			if !strings.Contains(r.err.Error(), "tokyo") || !strings.Contains(r.err.Error(), "0-3") {
				t.Fatalf("range-full error does not name the datacenter and range: %v", r.err)
			}
			continue
		}
		st := r.w.Status()
		if !st.Held || held[st.WorkerID] || st.WorkerID > 3 {
			t.Fatalf("worker holds %d (held before: %v)", st.WorkerID, held)
		}
		held[st.WorkerID] = true
	}
	if len(held) != 4 {
		t.Fatalf("%d workers hold IDs, want 4", len(held))
	}
}

// TestPartition cuts a worker from etcd: it stops issuing before etcd
// expires its lease; a second worker then takes the ID and issues above
// everything the first issued; after the cut heals the first claims again
// and resumes without a duplicate.
func TestPartition(t *testing.T) {
	srv := etcdtest.Start(t)
	direct := etcdtest.Client(t, srv.Endpoints()...)
	cliA, proxy := proxied(t, srv.Endpoints()[0])
	src := clock.NewReal()
	cfg := fastConfig("tokyo", workerid.Range{First: 5, Last: 6})

	a := mustStart(t, cliA, cfg, src)
	if id := a.Status().WorkerID; id != 5 {
		t.Fatalf("first worker holds %d, want 5", id)
	}
	var recA issued
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { issueUntil(a, src, &recA, stop) })

	// Watch the claim key to see when etcd expires A's lease.
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(t.Context()))
	defer wcancel()
	watch := direct.Watch(wctx, "/mig/workers/05")
	<-src.After(500 * time.Millisecond)
	fenced := a.Done()
	proxy.Cut()

	var expiredAt time.Duration
	for expiredAt == 0 {
		select {
		case wr := <-watch:
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					expiredAt = src.Mono()
				}
			}
		case <-src.After(10 * time.Second):
			t.Fatal("etcd did not expire the partitioned worker's lease")
		}
	}
	select {
	case <-fenced:
	default:
		t.Fatal("the partitioned worker was not fenced when etcd expired its lease")
	}
	close(stop)
	wg.Wait()
	idsA, atA := recA.snapshot()
	if len(idsA) == 0 {
		t.Fatal("worker A issued nothing")
	}
	lastA := atA[len(atA)-1]
	if lastA >= expiredAt {
		t.Fatalf("A's last ID at %v, not before etcd expired its lease at %v", lastA, expiredAt)
	}
	t.Logf("A's last ID %v before etcd expired its lease", expiredAt-lastA)

	b := mustStart(t, direct, cfg, src)
	if id := b.Status().WorkerID; id != 5 {
		t.Fatalf("second worker holds %d, want 5", id)
	}
	idsB := take(t, b, 20000)
	assertAllAbove(t, idsB, idsA)

	proxy.Restore()
	waitFor(t, "A claiming again", 15*time.Second, func() bool { return a.Status().Held })
	if id := a.Status().WorkerID; id != 6 {
		t.Fatalf("A re-claimed %d, want 6", id)
	}
	idsA2 := take(t, a, 20000)
	assertAllAbove(t, idsA2, idsA)
	assertUnique(t, idsA, idsB, idsA2, take(t, b, 1000))
	if f := a.Status().Stats.Fences; f != 1 {
		t.Fatalf("A counted %d fences, want 1", f)
	}
}

// TestCrashThenHolderWithClockBehind: a worker vanishes without a clean
// shutdown, so its lease must expire; the next holder of its ID has a wall
// clock 10 s behind and still issues above everything the first issued.
func TestCrashThenHolderWithClockBehind(t *testing.T) {
	srv := etcdtest.Start(t)
	direct := etcdtest.Client(t, srv.Endpoints()...)
	cliA, proxy := proxied(t, srv.Endpoints()[0])
	real := clock.NewReal()
	cfg := fastConfig("tokyo", workerid.Range{First: 7, Last: 7})

	a := mustStart(t, cliA, cfg, real)
	idsA := take(t, a, 50000)
	<-real.After(200 * time.Millisecond)
	idsA = append(idsA, take(t, a, 50000)...)
	proxy.Cut() // from etcd's side, A has crashed: no renewal, no revoke

	behind := clock.NewSkewed(real, -10*time.Second)
	b := startWhenFree(t, "the crashed worker's ID to free up", 10*time.Second, direct, cfg, behind)
	idsB := take(t, b, 50000)
	assertAllAbove(t, idsB, idsA)
	// B's IDs carry times from A's watermark (real time less the ~2 s since
	// the cut), not from its own wall clock 10 s behind.
	l := mig.DefaultLayout()
	if bt, wall := l.Time(idsB[0]), behind.Now().Wall; bt.Before(wall.Add(5 * time.Second)) {
		t.Fatalf("B's first ID is dated %v, near its own wall clock %v", bt, wall)
	}
}

func TestCleanShutdownThenRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	cfg := fastConfig("osaka", workerid.Range{First: 9, Last: 9})

	a := mustStart(t, cli, cfg, src)
	ids := take(t, a, 300000) // more than one tick's worth: borrows ahead
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Next(); !errors.Is(err, workerid.ErrNotHeld) {
		t.Fatalf("Next after Close = %v, want ErrNotHeld", err)
	}
	// The final watermark is the last tick issued, not now + window.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/mig/watermarks/09")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("reading the watermark: %v", err)
	}
	last, _ := mig.DefaultLayout().Decompose(slices.Max(ids))
	if !strings.Contains(string(resp.Kvs[0].Value), `"tick":`+strconv.FormatInt(last.Tick, 10)) {
		t.Fatalf("final watermark %s, want tick %d", resp.Kvs[0].Value, last.Tick)
	}

	begin := src.Mono()
	b, err := start(t, cli, cfg, src)
	if err != nil {
		t.Fatalf("restart after a clean shutdown: %v", err)
	}
	if d := src.Mono() - begin; d > time.Second {
		t.Fatalf("re-claiming took %v", d)
	}
	if b.Status().WorkerID != 9 {
		t.Fatalf("restart claimed %d, want 9", b.Status().WorkerID)
	}
	assertAllAbove(t, take(t, b, 1000), ids)
}

func TestMetadataMismatchRefused(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	mustStart(t, cli, fastConfig("tokyo", workerid.Range{First: 0, Last: 15}), src)

	other, _ := mig.ParseLayout("2020-01-01T00:00:00Z")
	for _, tc := range []struct {
		name  string
		cfg   func() workerid.Config
		want  error
		words []string
	}{
		{"another epoch", func() workerid.Config {
			c := fastConfig("tokyo", workerid.Range{First: 0, Last: 15})
			c.Layout = other
			return c
		}, workerid.ErrMismatch, []string{"2020-01-01T00:00:00Z", mig.DefaultEpoch}},
		{"overlapping datacenter", func() workerid.Config {
			return fastConfig("osaka", workerid.Range{First: 10, Last: 20})
		}, workerid.ErrMismatch, []string{"osaka", "10-20", "tokyo", "0-15", "overlaps"}},
		{"same datacenter, other range", func() workerid.Config {
			return fastConfig("tokyo", workerid.Range{First: 0, Last: 7})
		}, workerid.ErrMismatch, []string{"tokyo", "0-15", "0-7"}},
		{"others overlap own", func() workerid.Config {
			c := fastConfig("osaka", workerid.Range{First: 16, Last: 31})
			c.Others = map[string]workerid.Range{"nagoya": {First: 30, Last: 40}}
			return c
		}, workerid.ErrConfig, []string{"nagoya", "overlaps"}},
		{"known other datacenter disagrees", func() workerid.Config {
			c := fastConfig("osaka", workerid.Range{First: 16, Last: 31})
			c.Others = map[string]workerid.Range{"tokyo": {First: 0, Last: 14}}
			return c
		}, workerid.ErrMismatch, []string{"tokyo", "0-15", "0-14"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := start(t, cli, tc.cfg(), src)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start = %v, want %v", err, tc.want)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// A second datacenter's worker, consistent with the ranges, is refused
	// all the same: the cluster is tokyo's, and a worker of osaka here
	// would claim IDs that osaka's own cluster hands out too.
	c := fastConfig("osaka", workerid.Range{First: 16, Last: 31})
	c.Others = map[string]workerid.Range{"tokyo": {First: 0, Last: 15}}
	if _, err := start(t, cli, c, src); !errors.Is(err, workerid.ErrMismatch) || !strings.Contains(err.Error(), "belongs to datacenter tokyo") {
		t.Fatalf("Start of an osaka worker on tokyo's cluster = %v, want ErrMismatch saying the cluster belongs to tokyo", err)
	}
}

func TestEtcdUnreachableAtStart(t *testing.T) {
	srv := etcdtest.Start(t)
	cli, proxy := proxied(t, srv.Endpoints()[0])
	proxy.Cut()
	src := clock.NewReal()
	cfg := fastConfig("tokyo", workerid.Range{First: 0, Last: 3})
	cfg.StartTimeout = time.Second
	begin := src.Mono()
	_, err := start(t, cli, cfg, src)
	took := src.Mono() - begin
	if !errors.Is(err, workerid.ErrUnreachable) {
		t.Fatalf("Start with etcd cut = %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), proxy.Addr()) {
		t.Fatalf("error %q does not name the endpoint %s", err, proxy.Addr())
	}
	if took > 3*time.Second {
		t.Fatalf("Start took %v with a 1s start timeout", took)
	}
	if took < 900*time.Millisecond {
		t.Fatalf("Start gave up after %v, before its 1s start timeout", took)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := fastConfig("tokyo", workerid.Range{First: 0, Last: 15})
	for _, tc := range []struct {
		name string
		mod  func(*workerid.Config)
	}{
		{"no datacenter", func(c *workerid.Config) { c.Datacenter = "" }},
		{"slash in datacenter", func(c *workerid.Config) { c.Datacenter = "a/b" }},
		{"range reversed", func(c *workerid.Config) { c.Range = workerid.Range{First: 5, Last: 4} }},
		{"range past 63", func(c *workerid.Config) { c.Range = workerid.Range{First: 60, Last: 64} }},
		{"TTL below 2s", func(c *workerid.Config) { c.TTL = time.Second }},
		{"margin too large", func(c *workerid.Config) { c.Margin = c.TTL }},
		{"negative margin", func(c *workerid.Config) { c.Margin = -time.Second }},
		{"request timeout too long", func(c *workerid.Config) { c.RequestTimeout = c.TTL }},
		{"tiny window", func(c *workerid.Config) { c.Window = mig.Tick }},
		{"borrow beyond window", func(c *workerid.Config) { c.Borrow = c.Window }},
		{"others overlap each other", func(c *workerid.Config) {
			c.Others = map[string]workerid.Range{"osaka": {First: 16, Last: 31}, "nagoya": {First: 30, Last: 40}}
		}},
		{"slash in another datacenter", func(c *workerid.Config) {
			c.Others = map[string]workerid.Range{"osaka/x": {First: 16, Last: 31}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if err := c.Validate(); !errors.Is(err, workerid.ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"0-15", "3", " 16 - 31 "} {
		if _, err := workerid.ParseRange(s); err != nil {
			t.Errorf("ParseRange(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "a-b", "15-0", "0-64", "-3"} {
		if _, err := workerid.ParseRange(s); !errors.Is(err, workerid.ErrConfig) {
			t.Errorf("ParseRange(%q) = %v, want ErrConfig", s, err)
		}
	}
}

// TestEtcdMemberLoss: losing one member of three does not interrupt a
// worker; losing quorum fences it; quorum back, it claims again.
func TestEtcdMemberLoss(t *testing.T) {
	cl, err := etcdcluster.Start(t.Context(), t.TempDir(), 3, etcdcluster.WithTiming(50*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	cli := etcdtest.Client(t, cl.Endpoints()...)
	src := clock.NewReal()
	w := mustStart(t, cli, fastConfig("tokyo", workerid.Range{First: 0, Last: 3}), src)

	leader := cl.Leader()
	follower := (leader + 1) % 3
	if err := cl.Stop(follower); err != nil {
		t.Fatal(err)
	}
	var failures int
	end := src.Mono() + 3*time.Second
	for src.Mono() < end {
		if _, err := w.Next(); err != nil {
			failures++
		}
		<-src.After(time.Millisecond)
	}
	if failures > 0 || w.Status().Stats.Fences > 0 {
		t.Fatalf("with one member down: %d failed calls, %d fences", failures, w.Status().Stats.Fences)
	}

	done := w.Done()
	if err := cl.Stop(leader); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-src.After(5 * time.Second):
		t.Fatal("worker still issuing 5s after etcd lost quorum")
	}
	if _, err := w.Next(); !errors.Is(err, workerid.ErrNotHeld) {
		t.Fatalf("Next without quorum = %v, want ErrNotHeld", err)
	}
	if err := cl.Restart(t.Context(), follower, leader); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "claiming again after quorum returned", 20*time.Second, func() bool { return w.Status().Held })
	if _, err := w.Next(); err != nil {
		t.Fatal(err)
	}
}

// countingClient counts every RPC, unary or stream, the client starts;
// watches counts the watch streams among them.
func countingClient(t testing.TB, calls, watches *atomic.Int64, endpoints ...string) *clientv3.Client {
	t.Helper()
	return etcdtest.NewClient(t, clientv3.Config{
		Endpoints: endpoints,
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				calls.Add(1)
				return invoker(ctx, method, req, reply, cc, opts...)
			}), grpc.WithChainStreamInterceptor(
			func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				calls.Add(1)
				if method == "/etcdserverpb.Watch/Watch" {
					watches.Add(1)
				}
				return streamer(ctx, desc, cc, method, opts...)
			})},
	})
}

// TestHotPathMakesNoEtcdCall issues a million IDs between two background
// etcd calls and counts the calls the client made meanwhile: none, but
// for the stream of the worker's watch on its claim, which its loop may
// open meanwhile (once).
func TestHotPathMakesNoEtcdCall(t *testing.T) {
	srv := etcdtest.Start(t)
	var calls, watches atomic.Int64
	cli := countingClient(t, &calls, &watches, srv.Endpoints()...)
	cfg := fastConfig("tokyo", workerid.Range{First: 0, Last: 3})
	cfg.TTL, cfg.RequestTimeout, cfg.Window = time.Minute, time.Second, time.Minute
	w := mustStart(t, cli, cfg, clock.NewReal())
	before, watchesBefore := calls.Load(), watches.Load()
	for range 1_000_000 {
		if _, err := w.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if n, ws := calls.Load()-before, watches.Load()-watchesBefore; n-ws != 0 || ws > 1 {
		t.Fatalf("%d etcd calls while issuing a million IDs, %d of them watches", n, ws)
	}
}

// TestWatermarkWriteRate measures the watermark writes of an idle worker
// with a 2s window over 5s and extrapolates to the default window: one
// write per half window, 720 an hour at 10s.
func TestWatermarkWriteRate(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	cfg := fastConfig("tokyo", workerid.Range{First: 0, Last: 3})
	cfg.Window = 2 * time.Second
	w := mustStart(t, cli, cfg, src)
	before := w.Status().Stats.WatermarkWrites
	const run = 5 * time.Second
	<-src.After(run)
	writes := w.Status().Stats.WatermarkWrites - before
	perHour := float64(writes) / run.Hours() * float64(cfg.Window) / float64(workerid.DefaultWindow)
	t.Logf("%d watermark writes in %v with a %v window: %.0f per worker per hour at the default %v window",
		writes, run, cfg.Window, perHour, workerid.DefaultWindow)
	// One write per half window: 5 in 5s, give or take the phase.
	if writes < 3 || writes > 7 {
		t.Fatalf("%d watermark writes in %v with a %v window, want about 5", writes, run, cfg.Window)
	}
	if h := w.Status().WatermarkHeadroom; h < cfg.Window/4 {
		t.Fatalf("watermark only %v ahead of the clock", h)
	}
}

// BenchmarkWorkerNext is the steady-state hot path of a worker holding a
// claim: it reports the etcd calls made per ID (background renewals and
// watermark writes included), which rounds to zero.
func BenchmarkWorkerNext(b *testing.B) {
	srv := etcdtest.Start(b)
	var calls, watches atomic.Int64
	cli := countingClient(b, &calls, &watches, srv.Endpoints()...)
	w := mustStart(b, cli, workerid.Config{Datacenter: "tokyo", Layout: mig.DefaultLayout()}, clock.NewReal())
	before := calls.Load()
	b.ResetTimer()
	for b.Loop() {
		if _, err := w.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(calls.Load()-before)/float64(b.N), "etcd-calls/op")
}
