package seqfacade_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/seqfacade"
)

// TestRoutedRedirect: three routed nodes share the groups; a call to a
// node that does not own the uid's group answers a *NotOwnerError that
// carries the table and names the owner, which serves it: a client with
// no table (or a stale one) reaches the right node in one extra round
// trip.
func TestRoutedRedirect(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	for _, name := range []string{"a", "b", "c"} {
		c.add(routedConfig(name))
	}
	r := c.serving(20*time.Second, "a", "b", "c")
	per := map[string]int{}
	for g := range testGroups {
		o, addr, _ := ownerOf(r, uint64(g*uidsPerGroup+1))
		per[o]++
		if addr != o+".test:7000" {
			t.Fatalf("group %d: owner %s at %q", g, o, addr)
		}
	}
	if len(per) != 3 {
		t.Fatalf("groups per node: %v", per)
	}
	rec := newRecorder(t, c.src)
	for uid := uint64(1); uid < testGroups*uidsPerGroup; uid += 7 {
		// An empty table: ask any node.
		first := c.node([]string{"a", "b", "c"}[uid%3])
		calls := 0
		m := first
		for {
			calls++
			call := rec.next(0, m, uid)
			if call.err == nil {
				break
			}
			var no *seqfacade.NotOwnerError
			if !errors.As(call.err, &no) || !errors.Is(call.err, seqfacade.ErrNotOwner) || isUnavailable(call.err) {
				t.Fatalf("uid %d on %s: %v, want a NotOwnerError alone", uid, m.name, call.err)
			}
			if no.Routing.Version == 0 || no.Address != no.Owner+".test:7000" || no.Group != groupOf(no.Routing, uid) {
				t.Fatalf("uid %d: redirect %+v", uid, no)
			}
			if o, _, _ := ownerOf(no.Routing, uid); o != no.Owner {
				t.Fatalf("uid %d: redirected to %s, its table says %s", uid, no.Owner, o)
			}
			m = c.node(no.Owner)
		}
		if calls > 2 {
			t.Fatalf("uid %d: %d calls from %s", uid, calls, first.name)
		}
	}
	if got := c.node("a").n.Stats(); got.RoutingVersion == 0 || got.GroupsOwned == 0 || got.GroupsActivating != 0 {
		t.Fatalf("stats of a: %+v", got)
	}

	// An operator deletes the table: the nodes stop serving once their
	// rights run out, the arbiter writes a new one with a higher version,
	// and every group is activated afresh, above everything served.
	if _, err := c.direct.Delete(ctxT(t), "/mig/seq/routing"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new table", 10*time.Second, func() bool { return c.routing().Version > r.Version })
	r2 := c.serving(20*time.Second, "a", "b", "c")
	for uid := uint64(1); uid < testGroups*uidsPerGroup; uid += 7 {
		o, _, _ := ownerOf(r2, uid)
		if call := rec.next(0, c.node(o), uid); call.err != nil {
			t.Fatalf("uid %d on %s after the table was rewritten: %v", uid, o, call.err)
		}
	}
	t.Logf("table deleted at version %d, rewritten at version %d", r.Version, r2.Version)
	rec.check()
}

// TestRoutedJoinAndArbiterDeath: under load, a third node joins two and
// is given groups at most MaxMoves a rebalancing round; then the arbiter
// dies (cut from etcd for good), another node takes the role and gives
// the dead node's groups to the live ones. No rollback, no duplicate.
func TestRoutedJoinAndArbiterDeath(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.add(counting(routedConfig("a")))
	c.add(counting(routedConfig("b")))
	c.serving(20*time.Second, "a", "b")
	events := c.record("/mig/seq/")
	rec := newRecorder(t, c.src)
	l := c.startLoad(rec, 3)
	<-c.src.After(200 * time.Millisecond)

	// The share counted in groups: load balancing (the load here is well
	// above MinLoad) evens calls, which gives c as many groups as the
	// load on them happens to say.
	c.add(counting(routedConfig("c")))
	r := c.serving(20*time.Second, "a", "b", "c")
	waitFor(t, "c given its share", 20*time.Second, func() bool {
		r = c.serving(10*time.Second, "a", "b", "c")
		n := 0
		for g := range testGroups {
			if o, _, _ := ownerOf(r, uint64(g*uidsPerGroup)); o == "c" {
				n++
			}
		}
		return n >= testGroups/3
	})
	tables, _ := events.tables(t, "/mig/seq/routing")
	if len(tables) < 2 {
		t.Fatalf("%d tables written while c joined", len(tables))
	}
	// Every table written while a and b lived moved at most MaxMoves.
	for i := 1; i < len(tables); i++ {
		prev, next := tables[i-1].owners(), tables[i].owners()
		moved := 0
		for g := range next {
			if next[g] != prev[g] {
				moved++
			}
		}
		if tables[i].Version <= tables[i-1].Version || moved > routedConfig("x").MaxMoves {
			t.Fatalf("table %d after %d moved %d groups", tables[i].Version, tables[i-1].Version, moved)
		}
	}

	arbiter := func() []string {
		var arb []string
		for _, n := range []string{"a", "b", "c"} {
			if m := c.node(n); !l.isDead(n) && m.n.Stats().Arbiter {
				arb = append(arb, n)
			}
		}
		return arb
	}
	waitFor(t, "one arbiter", 10*time.Second, func() bool { return len(arbiter()) == 1 })
	dead := arbiter()[0]
	l.kill(dead)
	c.node(dead).proxy.Cut()
	var live []string
	for _, n := range []string{"a", "b", "c"} {
		if n != dead {
			live = append(live, n)
		}
	}
	waitFor(t, "another arbiter", 15*time.Second, func() bool {
		a := arbiter()
		return len(a) == 1 && a[0] != dead
	})
	c.serving(20*time.Second, live...)
	<-c.src.After(300 * time.Millisecond)
	calls := l.finish()

	resp, err := c.direct.Get(ctxT(t), "/mig/seq/arbiter")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) == dead {
		t.Fatalf("arbiter key after %s died: %v %v", dead, resp, err)
	}
	var redirects, served int
	for _, call := range calls {
		switch {
		case call.redirectedTo != "":
			redirects++
		case call.err == nil:
			served++
		}
	}
	t.Logf("arbiter %s died; %s arbitrates; %d tables; %d calls: %d served, %d redirected",
		dead, resp.Kvs[0].Value, len(tables), len(calls), served, redirects)
	rec.check()
}

// TestRoutedBatchAndCleanClose: a batch on one node's groups is served;
// a batch that names a uid of another node's group answers a
// *NotOwnerError and consumes nothing. A node closed cleanly releases its
// groups and revokes its lease: the others serve its groups at once,
// without waiting for the lease to expire or their activation delay (ten
// seconds here, so that only the releases can explain service in time).
func TestRoutedBatchAndCleanClose(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	names := []string{"a", "b", "c"}
	for _, name := range names {
		cfg := routedConfig(name)
		cfg.ActivationDelay, cfg.Margin = 10*time.Second, 2*time.Second
		c.add(cfg)
	}
	r := c.serving(30*time.Second, names...)
	byOwner := map[string][]uint64{}
	for uid := uint64(1); uid < testGroups*uidsPerGroup; uid += 9 {
		o, _, _ := ownerOf(r, uid)
		byOwner[o] = append(byOwner[o], uid)
	}
	a := c.node("a")
	before := map[uint64]uint64{}
	for _, u := range byOwner["a"] {
		before[u], _ = a.n.Current(ctxT(t), u)
	}
	mixed := append(slices.Clone(byOwner["a"]), byOwner["b"][0])
	_, err := a.n.NextBatch(ctxT(t), mixed)
	var no *seqfacade.NotOwnerError
	if !errors.As(err, &no) || no.Owner != "b" {
		t.Fatalf("a batch naming b's uid on a: %v", err)
	}
	for _, u := range byOwner["a"] {
		if cur, _ := a.n.Current(ctxT(t), u); cur != before[u] {
			t.Fatalf("uid %d moved from %d to %d in a refused batch", u, before[u], cur)
		}
	}
	vs, err := a.n.NextBatch(ctxT(t), byOwner["a"])
	if err != nil || len(vs) != len(byOwner["a"]) {
		t.Fatalf("a batch of a's uids: %v, %v", vs, err)
	}
	if st := a.n.Stats(); st.Redirects == 0 {
		t.Fatalf("stats: %+v", st)
	}

	closed := c.src.Mono()
	if err := a.n.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	delete(c.nodes, "a")
	c.mu.Unlock()
	c.serving(5*time.Second, "b", "c")
	took := c.src.Mono() - closed
	t.Logf("a closed: its groups served by b and c after %v", took)
	for _, u := range byOwner["a"] {
		o, _, _ := ownerOf(c.routing(), u)
		v, err := c.node(o).n.Next(ctxT(t), u)
		if err != nil || v <= vs[slices.Index(byOwner["a"], u)] {
			t.Fatalf("uid %d on %s after a closed: %d, %v", u, o, v, err)
		}
	}
}

// drainingCluster starts nodes a, b and c (a 10 s activation delay, so
// that only handoffs move groups in time), asking each other for
// releases through handOff (nil: the cluster's own, c.handOff; see
// noHandOff), waits until they serve, and puts load on them: it returns
// the cluster, a's groups, and the load's recorder and clients.
func drainingCluster(t *testing.T, handOff func(*cluster) handOffFunc) (*cluster, []int, *recorder, *load) {
	t.Helper()
	c := newCluster(t)
	names := []string{"a", "b", "c"}
	for _, name := range names {
		cfg := routedConfig(name)
		cfg.ActivationDelay, cfg.Margin = 10*time.Second, 2*time.Second
		if handOff == nil {
			cfg.HandOff = c.handOff
		} else {
			cfg.HandOff = handOff(c)
		}
		c.add(cfg)
	}
	// The first table waits out the delay once (no previous owner).
	r := c.serving(30*time.Second, names...)
	var aGroups []int
	for g := range testGroups {
		if o, _, _ := ownerOf(r, uint64(g*uidsPerGroup)); o == "a" {
			aGroups = append(aGroups, g)
		}
	}
	rec := newRecorder(t, c.src)
	l := c.startLoad(rec, 3)
	<-c.src.After(300 * time.Millisecond)
	return c, aGroups, rec, l
}

// TestDrainHandoff: under load, a node drains: the arbiter hands its
// groups to the others at once, it releases each as soon as it stopped
// serving it, and the others serve them without waiting their activation
// delay (ten seconds here, so that the handoff is the only way in time).
// No call fails on the way, and the history has no rollback.
func TestDrainHandoff(t *testing.T) {
	t.Parallel()
	c, aGroups, rec, l := drainingCluster(t, noHandOff)

	// a's etcd a site away: its release transactions are still in flight
	// when it sees its last group go.
	begin := drainA(t, c, 20*time.Millisecond)
	drained := c.src.Mono() - begin
	// Once Drain returns the process may exit: every release must be
	// written by then, not left to writes that exiting cancels.
	resp, err := c.direct.Get(ctxT(t), "/mig/seq/released/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	releasedBy := map[string]string{}
	for _, kv := range resp.Kvs {
		var rec struct{ Node string }
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			t.Fatalf("release %s: %v", kv.Key, err)
		}
		releasedBy[string(kv.Key)] = rec.Node
	}
	for _, g := range aGroups {
		if k := fmt.Sprintf("/mig/seq/released/%08x", g); releasedBy[k] != "a" {
			t.Errorf("group %d: no release by a when Drain returned (%s: %q)", g, k, releasedBy[k])
		}
	}
	c.node("a").proxy.Delay(0)
	if st := c.node("a").n.Stats(); st.GroupsOwned != 0 || !st.Draining {
		t.Fatalf("a after draining: %+v", st)
	}
	c.serving(5*time.Second, "b", "c")
	served := c.src.Mono() - begin
	<-c.src.After(300 * time.Millisecond)
	calls := l.finish()
	failed := failedSince(t, calls, begin)
	t.Logf("a's %d groups drained in %v, all served by b and c %v after the drain began (activation delay 10s); %d calls, %d failed",
		len(aGroups), drained, served, len(calls), failed)
	if failed > 0 {
		t.Errorf("%d calls failed during the drain", failed)
	}
	rec.check()
}

// TestDrainThroughCut: a node whose etcd is out of reach for a moment
// as it begins to drain still drains: the calls that would fail then
// (counting the other nodes, marking itself draining) are tried again.
func TestDrainThroughCut(t *testing.T) {
	t.Parallel()
	c, _, rec, l := drainingCluster(t, noHandOff)
	a := c.node("a")
	a.proxy.Cut()
	healed := make(chan struct{})
	go func() {
		defer close(healed)
		<-c.src.After(600 * time.Millisecond) // twice the request timeout
		a.proxy.Restore()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	err := a.n.Drain(ctx)
	<-healed
	if err != nil {
		t.Fatalf("Drain with etcd cut off for 600ms as it began: %v", err)
	}
	if st := a.n.Stats(); st.GroupsOwned != 0 || !st.Draining {
		t.Fatalf("a after draining: %+v", st)
	}
	l.finish()
	rec.check()
}

// TestPulledHandoff: with direct handoffs, the nodes a draining node's
// groups move to ask it for their releases and serve at once from the
// state in its answers, while its own etcd is slow (each release written
// there would take a slow round trip, and the watch after it); its
// releases in etcd carry no state then. No call fails, no value repeats
// or goes back.
func TestPulledHandoff(t *testing.T) {
	t.Parallel()
	c, aGroups, rec, l := drainingCluster(t, nil)
	names := []string{"a", "b", "c"}
	before := map[string]seqfacade.Stats{}
	for _, name := range names {
		before[name] = c.node(name).n.Stats()
	}

	begin := drainA(t, c, 20*time.Millisecond)
	c.node("a").proxy.Delay(0)
	c.serving(5*time.Second, "b", "c")
	served := c.src.Mono() - begin
	<-c.src.After(300 * time.Millisecond)
	calls := l.finish()
	failed := failedSince(t, calls, begin)
	a := c.node("a").n.Stats()
	var pulled, used uint64
	for _, name := range []string{"b", "c"} {
		st := c.node(name).n.Stats()
		pulled += st.PulledReleases - before[name].PulledReleases
		used += st.Handoffs - before[name].Handoffs
	}
	t.Logf("a's %d groups served by b and c %v after the drain began; %d releases asked for and answered, %d groups served from their state; %d calls, %d failed",
		len(aGroups), served, pulled, used, len(calls), failed)
	if got := a.HandedOffDirectly - before["a"].HandedOffDirectly; got != uint64(len(aGroups)) || pulled != got {
		t.Errorf("a answered %d releases, b and c took %d: want every one of a's %d groups", got, pulled, len(aGroups))
	}
	if used == 0 {
		t.Error("no group was served from a state handed over directly")
	}
	resp, err := c.direct.Get(ctxT(t), "/mig/seq/released/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		var m struct {
			Node  string
			Floor []uint64
		}
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			t.Fatal(err)
		}
		if m.Node == "a" && m.Floor != nil {
			t.Errorf("%s: a's release in etcd carries a state, which it handed over directly", kv.Key)
		}
	}
	if failed > 0 {
		t.Errorf("%d calls failed during the drain", failed)
	}
	rec.check()
}

// drainA drains node a of c, its etcd delay away (each way), and returns
// when the drain began.
func drainA(t *testing.T, c *cluster, delay time.Duration) time.Duration {
	t.Helper()
	begin := c.src.Mono()
	c.node("a").proxy.Delay(delay)
	// Generous: on a loaded host (-race, other packages' tests) etcd calls
	// time out and are retried; the figures the tests log are what count.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := c.node("a").n.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	return begin
}

type handOffFunc = func(context.Context, string, []seqfacade.HandOffGroup) ([]seqfacade.HandedOff, error)

// noHandOff: nodes that never ask for releases (read from etcd only).
func noHandOff(*cluster) handOffFunc { return nil }

// TestPullFailsFallsBack: when asking for releases fails (the old owner
// unreachable), the releases still reach the new owners through etcd, a
// pull window later, and the drain loses no call.
func TestPullFailsFallsBack(t *testing.T) {
	// Not parallel: three nodes under load, beside the other drain tests,
	// make a loaded CI host time etcd writes out.
	unreachable := func(*cluster) handOffFunc {
		return func(context.Context, string, []seqfacade.HandOffGroup) ([]seqfacade.HandedOff, error) {
			return nil, errors.New("connection refused")
		}
	}
	c, aGroups, rec, l := drainingCluster(t, unreachable)
	begin := drainA(t, c, 0)
	c.serving(5*time.Second, "b", "c")
	served := c.src.Mono() - begin
	<-c.src.After(300 * time.Millisecond)
	failed := failedSince(t, l.finish(), begin)
	var failures, pulled uint64
	for _, name := range []string{"b", "c"} {
		st := c.node(name).n.Stats()
		failures += st.PullFailures
		pulled += st.PulledReleases
	}
	t.Logf("a's %d groups served by b and c %v after the drain began; %d asks failed", len(aGroups), served, failures)
	if failures == 0 || pulled != 0 || c.node("a").n.Stats().HandedOffDirectly != 0 {
		t.Errorf("asks failed %d times, %d releases pulled: want failures, and no release handed over directly", failures, pulled)
	}
	if failed > 0 {
		t.Errorf("%d calls failed during the drain", failed)
	}
	rec.check()
}
