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
