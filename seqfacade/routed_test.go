package seqfacade_test

import (
	"errors"
	"testing"
	"time"

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
		o, addr, _ := r.Owner(uint64(g*uidsPerGroup + 1))
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
			if no.Routing.Version == 0 || no.Address != no.Owner+".test:7000" || no.Group != no.Routing.Group(uid) {
				t.Fatalf("uid %d: redirect %+v", uid, no)
			}
			if o, _, _ := no.Routing.Owner(uid); o != no.Owner {
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
	rec.check()
}

// TestRoutedJoinAndArbiterDeath: under load, a third node joins two and
// is given groups at most MaxMoves a rebalancing round; then the arbiter
// dies (cut from etcd for good), another node takes the role and gives
// the dead node's groups to the live ones. No rollback, no duplicate.
func TestRoutedJoinAndArbiterDeath(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.add(routedConfig("a"))
	c.add(routedConfig("b"))
	c.serving(20*time.Second, "a", "b")
	events := c.record("/mig/seq/")
	rec := newRecorder(t, c.src)
	l := c.startLoad(rec, 3)
	<-c.src.After(200 * time.Millisecond)

	c.add(routedConfig("c"))
	r := c.serving(20*time.Second, "a", "b", "c")
	waitFor(t, "c given its share", 10*time.Second, func() bool {
		r = c.serving(10*time.Second, "a", "b", "c")
		n := 0
		for g := range testGroups {
			if o, _, _ := r.Owner(uint64(g * uidsPerGroup)); o == "c" {
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
		if tables[i].Version != tables[i-1].Version+1 || moved > routedConfig("x").MaxMoves {
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
