package seqfacade

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

// The edges of docs/seq-failover.md on manual clocks: two hosts, old
// owner A and new owner B, each with its own clock; "true" time is what
// the test moves, and each host's clock follows it at its own rate.

const (
	edgeDelay  = time.Second
	edgeMargin = 200 * time.Millisecond
	edgeReg    = 7 // every host's registration revision, unless a test changes it
)

// host is a node's routeState on its own manual clock, which runs at
// rate (1 = true time).
type host struct {
	st   *routeState
	clk  *clock.Manual
	rate float64
}

func edgeConfig(name string, delay time.Duration) Config {
	c := Config{NodeName: name, SectionSize: 10, GroupSize: 1, UIDLimit: 40, ActivationDelay: delay}
	c.Margin = edgeMargin
	return c.withDefaults()
}

func newHost(t *testing.T, name string, delay time.Duration, rate float64) *host {
	t.Helper()
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	cfg := edgeConfig(name, delay)
	h := &host{st: newRouteState(cfg, clk, newRouteKeys(cfg), newLayout(cfg).groups), clk: clk, rate: rate}
	h.st.begin(edgeReg)
	return h
}

// world moves true time for every host.
type world struct {
	now   time.Duration // true time since the start
	hosts []*host
}

func (w *world) advance(d time.Duration) {
	w.now += d
	for _, h := range w.hosts {
		h.clk.Advance(time.Duration(float64(d) * h.rate))
	}
}

// tableAt is a routing table of 4 groups at revision rev: group 0 owned
// by owner0 in the tenure since0 that followed prev0; the others by "x".
// Every node is registered at edgeReg.
func tableAt(version uint64, rev int64, owner0 string, since0 uint64, prev0 tenure) *table {
	lay := newLayout(edgeConfig("x", edgeDelay))
	members := map[string]member{"x": {Reg: edgeReg}}
	if owner0 != "" {
		members[owner0] = member{Reg: edgeReg, Address: owner0 + ":1"}
	}
	return newTable(version, []string{owner0, "x", "x", "x"}, []uint64{since0, 1, 1, 1},
		[]tenure{prev0, {}, {}, {}}, nil, members, rev, lay)
}

// confirmNow is a confirmation sent and answered at once.
func (h *host) confirmNow(t *table) { h.st.confirm(t, h.clk.Mono(), h.clk.Mono()) }

// TestRoutingEdges: at the moment the new owner may first serve a group,
// the old owner's right to serve it has run out, by at least the margin
// when the clocks agree, and still at all when the old owner's clock runs
// slow by margin/delay; the worst case is a confirmation sent at the very
// moment the table changed, answered late. One tick earlier the new owner
// refuses.
func TestRoutingEdges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delayB time.Duration // B's activation delay
		rateA  float64       // A's clock rate
		ackLag time.Duration // A's confirmation answered this long after it was sent
		gap    time.Duration // A's read processed this long before the table changed
		seeLag time.Duration // B sees the new table this long after it committed
		want   time.Duration // A's headroom at B's activation, at most
	}{
		{"read at the commit, seen at once", edgeDelay, 1, 0, 0, 0, -edgeMargin},
		{"late answer counts from the send", edgeDelay, 1, 900 * time.Millisecond, 0, 0, -edgeMargin},
		{"read well before the commit", edgeDelay, 1, 0, 700 * time.Millisecond, 0, -edgeMargin - 700*time.Millisecond},
		{"seen late", edgeDelay, 1, 0, 0, 300 * time.Millisecond, -edgeMargin - 300*time.Millisecond},
		{"B's delay longer", 2 * edgeDelay, 1, 0, 0, 0, -edgeMargin - edgeDelay},
		{"A's clock 19% slow (the margin is 20% of the delay)", edgeDelay, 0.81, 0, 0, 0, 0},
		{"A's clock 20% fast", edgeDelay, 1.2, 0, 0, 0, -edgeMargin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newHost(t, "a", edgeDelay, tc.rateA)
			b := newHost(t, "b", tc.delayB, 1)
			w := &world{hosts: []*host{a, b}}
			old := tableAt(1, 10, "a", 1, tenure{})
			next := tableAt(2, 20, "b", 2, tenure{Node: "a", Reg: edgeReg, Since: 1})

			// A has served group 0 for long.
			a.st.observe(old, a.clk.Mono())
			w.advance(3 * time.Second)
			a.confirmNow(old)
			if _, err := a.st.claimFor(0); err != nil {
				t.Fatalf("A cannot serve its group: %v", err)
			}
			b.st.observe(old, b.clk.Mono())
			if _, err := b.st.claimFor(0); !errors.Is(err, ErrNotOwner) {
				t.Fatalf("B on A's group: %v", err)
			}

			// A sends its last confirmation; its read is processed gap
			// before the new table commits.
			w.advance(time.Second)
			sent := a.clk.Mono()
			w.advance(tc.ackLag)
			w.advance(tc.gap)
			commit := w.now
			w.advance(tc.seeLag)
			b.st.observe(next, b.clk.Mono())
			seen := b.clk.Mono()
			// A's answer arrives later still, showing the old table.
			w.advance(100 * time.Millisecond)
			a.st.confirm(old, sent, a.clk.Mono())
			// B confirms the new table on its next round.
			b.confirmNow(next)

			// One tick before the activation, just after another round of
			// B's: B still refuses.
			w.advance(seen + tc.delayB - b.clk.Mono() - time.Nanosecond)
			b.confirmNow(next)
			var act *activatingError
			if _, err := b.st.claimFor(0); !errors.As(err, &act) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("B a tick before its activation: %v", err)
			}
			cA, errA := a.st.claimFor(0)
			w.advance(time.Nanosecond)
			cB, err := b.st.claimFor(0)
			if err != nil {
				t.Fatalf("B at its activation (%v after the commit): %v", w.now-commit, err)
			}
			if cB.Headroom() <= 0 {
				t.Fatalf("B's claim has headroom %v", cB.Headroom())
			}
			// A never saw the new table: only time stops it.
			if errA == nil {
				if h := cA.Headroom(); h > tc.want {
					t.Fatalf("A's headroom at B's activation is %v, want at most %v", h, tc.want)
				}
			}
			h := (sent + edgeDelay - edgeMargin) - a.clk.Mono()
			if h > tc.want {
				t.Fatalf("A's right ends %v away at B's activation, want at most %v", h, tc.want)
			}
			if _, err := a.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("A at B's activation: %v, want ErrUnavailable", err)
			}
			t.Logf("A's right ran out %v before B's activation (by A's clock)", -h)
		})
	}
}

// TestHandoff: B serves at once, before its delay, when it reads A's
// release of exactly the tenure before B's; A releases only a tenure it
// activated, only after its claim ended, and a release of any other
// tenure (another since, another incarnation, another node) does not
// count.
func TestHandoff(t *testing.T) {
	a := newHost(t, "a", edgeDelay, 1)
	b := newHost(t, "b", edgeDelay, 1)
	w := &world{hosts: []*host{a, b}}
	old := tableAt(1, 10, "a", 1, tenure{})
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	next := tableAt(2, 20, "b", 2, aTenure)

	a.confirmNow(old)
	w.advance(edgeDelay)
	a.confirmNow(old)
	cA, err := a.st.claimFor(0)
	if err != nil {
		t.Fatal(err)
	}
	if rels := a.st.releases(); len(rels) != 0 {
		t.Fatalf("releases before any move: %v", rels)
	}

	b.st.observe(next, b.clk.Mono())
	b.confirmNow(next)
	if _, err := b.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("B before A's release: %v", err)
	}
	for _, wrong := range []tenure{
		{Node: "a", Reg: edgeReg, Since: 0},     // another tenure of A's
		{Node: "a", Reg: edgeReg + 1, Since: 1}, // another incarnation of A
		{Node: "c", Reg: edgeReg, Since: 1},     // another node
		{Node: "b", Reg: edgeReg, Since: 2},     // B's own
		{Node: "a", Reg: edgeReg - 1, Since: 1}, // an older incarnation
	} {
		b.st.releasedSeen(rel(wrong))
		if _, err := b.st.claimFor(0); err == nil {
			t.Fatalf("B served on the release of %+v", wrong)
		}
	}

	// A sees the move: its claim ends, then its release is queued.
	a.st.observe(next, a.clk.Mono())
	if cA.Headroom() > 0 {
		t.Fatal("A's claim outlived the move")
	}
	rels := a.st.releases()
	if len(rels) != 1 || rels[0].group != 0 || rels[0].t != aTenure {
		t.Fatalf("A's releases %+v, want group 0's tenure %+v", rels, aTenure)
	}
	b.st.releasedSeen(rel(rels[0].t))
	if groups, _ := b.st.activatable(); len(groups) != 1 || groups[0] != 0 {
		t.Fatalf("B's activatable groups after the release: %v", groups)
	}
	cB, err := b.st.claimFor(0)
	if err != nil {
		t.Fatalf("B after A's release, %v into its delay: %v", b.clk.Mono(), err)
	}
	if cB.Headroom() <= 0 {
		t.Fatal("B's claim is dead")
	}

	// C gets the group from B before B's... B activated, so B releases.
	c := newHost(t, "c", edgeDelay, 1)
	w.hosts = append(w.hosts, c)
	bTenure := tenure{Node: "b", Reg: edgeReg, Since: 2}
	third := tableAt(3, 30, "c", 3, bTenure)
	b.st.observe(third, b.clk.Mono())
	if rels := b.st.releases(); len(rels) != 1 || rels[0].t != bTenure {
		t.Fatalf("B's releases %+v", rels)
	}
}

// TestNoReleaseWithoutActivation: a node whose tenure never met its
// activation condition (it lost the group while still waiting its delay,
// its predecessor unreleased) releases nothing, so its successor waits
// its own delay: the node could not vouch for the owner before it. The
// same for a stale node that missed tenures: it releases only the tenure
// it activated, which is not the one before the new owner's. A tenure
// whose delay did pass is released even if never served.
func TestNoReleaseWithoutActivation(t *testing.T) {
	a := newHost(t, "a", edgeDelay, 1)
	w := &world{hosts: []*host{a}}
	a.st.observe(tableAt(2, 20, "a", 2, tenure{Node: "z", Reg: edgeReg, Since: 1}), a.clk.Mono())
	a.confirmNow(tableAt(2, 20, "a", 2, tenure{Node: "z", Reg: edgeReg, Since: 1}))
	w.advance(edgeDelay / 2)
	a.st.observe(tableAt(3, 30, "b", 3, tenure{Node: "a", Reg: edgeReg, Since: 2}), a.clk.Mono())
	if rels := a.st.releases(); len(rels) != 0 {
		t.Fatalf("a tenure never activated was released: %+v", rels)
	}
	a.st.observe(tableAt(4, 40, "a", 4, tenure{Node: "b", Reg: edgeReg, Since: 3}), a.clk.Mono())
	w.advance(edgeDelay)
	a.st.observe(tableAt(5, 50, "b", 5, tenure{Node: "a", Reg: edgeReg, Since: 4}), a.clk.Mono())
	if rels := a.st.releases(); len(rels) != 1 || rels[0].t.Since != 4 {
		t.Fatalf("a tenure past its delay, never served: releases %+v", rels)
	}

	// A stale node: it activated tenure 1, missed tenures 2 (b) and 3 (a
	// again, never activated), and sees tenure 4 (c) after 3.
	s := newHost(t, "s", edgeDelay, 1)
	ws := &world{hosts: []*host{s}}
	s.confirmNow(tableAt(1, 10, "s", 1, tenure{}))
	ws.advance(edgeDelay)
	s.confirmNow(tableAt(1, 10, "s", 1, tenure{}))
	if _, err := s.st.claimFor(0); err != nil {
		t.Fatal(err)
	}
	s.st.observe(tableAt(4, 40, "c", 4, tenure{Node: "s", Reg: edgeReg, Since: 3}), s.clk.Mono())
	rels := s.st.releases()
	if len(rels) != 1 || rels[0].t.Since != 1 {
		t.Fatalf("stale node released %+v, want only its own tenure since 1", rels)
	}
	c := newHost(t, "c", edgeDelay, 1)
	c.st.observe(tableAt(4, 40, "c", 4, tenure{Node: "s", Reg: edgeReg, Since: 3}), c.clk.Mono())
	c.confirmNow(tableAt(4, 40, "c", 4, tenure{Node: "s", Reg: edgeReg, Since: 3}))
	c.st.releasedSeen(rel(rels[0].t))
	if _, err := c.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("C served on a release of another tenure: %v", err)
	}
}

// TestNewIncarnation: a table that gives the group to this node's name
// under another registration (an earlier or a later process) is not this
// incarnation's: it serves nothing of it.
func TestNewIncarnation(t *testing.T) {
	a := newHost(t, "a", edgeDelay, 1)
	w := &world{hosts: []*host{a}}
	tbl := tableAt(1, 10, "a", 1, tenure{})
	a.confirmNow(tbl)
	w.advance(edgeDelay)
	a.confirmNow(tbl)
	c, err := a.st.claimFor(0)
	if err != nil {
		t.Fatal(err)
	}
	a.st.begin(edgeReg + 5) // registered again
	if c.Headroom() > 0 {
		t.Fatal("the claim outlived its registration")
	}
	w.advance(edgeDelay)
	a.confirmNow(tbl) // the table still names the old registration
	if _, err := a.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("served a group given to an earlier incarnation: %v", err)
	}
	// The arbiter gives it to the new incarnation: a new tenure after
	// the old one, which the old incarnation released at its end.
	rels := a.st.releases()
	if len(rels) != 1 || rels[0].t != (tenure{Node: "a", Reg: edgeReg, Since: 1}) {
		t.Fatalf("releases at the registration's end: %+v", rels)
	}
	lay := newLayout(edgeConfig("x", edgeDelay))
	again := newTable(2, []string{"a", "x", "x", "x"}, []uint64{2, 1, 1, 1}, []tenure{rels[0].t, {}, {}, {}}, nil,
		map[string]member{"a": {Reg: edgeReg + 5}, "x": {Reg: edgeReg}}, 20, lay)
	a.st.observe(again, a.clk.Mono())
	a.confirmNow(again)
	a.st.releasedSeen(rel(rels[0].t))
	if _, err := a.st.claimFor(0); err != nil {
		t.Fatalf("the new incarnation, after the old one's release: %v", err)
	}
}

// TestRoutingMovedAwayAndBack: a node that missed the table moving its
// group away and only sees the one giving it back must wait the
// activation delay again (since changed), and its old claim ends at once.
func TestRoutingMovedAwayAndBack(t *testing.T) {
	a := newHost(t, "a", edgeDelay, 1)
	w := &world{hosts: []*host{a}}
	a.confirmNow(tableAt(1, 10, "a", 1, tenure{}))
	w.advance(edgeDelay)
	a.confirmNow(tableAt(1, 10, "a", 1, tenure{}))
	c, err := a.st.claimFor(0)
	if err != nil {
		t.Fatal(err)
	}
	// Version 2 gave group 0 to b; version 3 gives it back at since 3.
	back := tableAt(3, 30, "a", 3, tenure{Node: "b", Reg: edgeReg, Since: 2})
	a.confirmNow(back)
	select {
	case <-c.Done():
	default:
		t.Fatal("the old claim survived a new since")
	}
	if c.Headroom() > 0 {
		t.Fatal("an ended claim has headroom")
	}
	if _, err := a.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("given back: %v, want ErrUnavailable until the delay passes", err)
	}
	w.advance(edgeDelay)
	a.confirmNow(back)
	if c2, err := a.st.claimFor(0); err != nil || c2 == c {
		t.Fatalf("after the delay: %v (same claim: %v)", err, c2 == c)
	}
	// A table that keeps the group (same since) keeps the claim, with a
	// proof naming the new revision.
	c3, _ := a.st.claimFor(0)
	a.confirmNow(tableAt(4, 40, "a", 3, tenure{Node: "b", Reg: edgeReg, Since: 2}))
	if c4, err := a.st.claimFor(0); err != nil || c4 != c3 {
		t.Fatalf("kept group: %v (same claim: %v)", err, c4 == c3)
	}
	if p := c3.Proof(); len(p) != 2 || p[0].GetCompare().GetModRevision() != 40 || p[1].GetCompare().GetCreateRevision() != edgeReg {
		t.Fatalf("proof %v, want the routing key at revision 40 and the registration at %d", p, edgeReg)
	}
}

// TestRoutingStaleConfirmation: a confirmation of an older table than
// one already seen (a watch delivered the newer first) neither extends
// nor revives anything.
func TestRoutingStaleConfirmation(t *testing.T) {
	a := newHost(t, "a", edgeDelay, 1)
	w := &world{hosts: []*host{a}}
	old := tableAt(1, 10, "a", 1, tenure{})
	a.confirmNow(old)
	w.advance(edgeDelay)
	a.confirmNow(old)
	c, err := a.st.claimFor(0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := c.(*routedClaim).dl.At()
	a.st.observe(tableAt(2, 20, "b", 2, tenure{Node: "a", Reg: edgeReg, Since: 1}), a.clk.Mono())
	if _, err := a.st.claimFor(0); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("after the move: %v", err)
	}
	w.advance(100 * time.Millisecond)
	a.confirmNow(old)
	if _, err := a.st.claimFor(0); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("after a stale confirmation: %v", err)
	}
	if c.Headroom() > 0 || c.(*routedClaim).dl.At() != deadline {
		t.Fatalf("the ended claim was extended: headroom %v", c.Headroom())
	}
	// Losing the registration ends every claim.
	third := tableAt(3, 30, "a", 3, tenure{Node: "b", Reg: edgeReg, Since: 2})
	a.confirmNow(third)
	w.advance(edgeDelay)
	a.confirmNow(third)
	c, err = a.st.claimFor(0)
	if err != nil {
		t.Fatal(err)
	}
	a.st.end()
	if c.Headroom() > 0 {
		t.Fatal("claim outlived its registration")
	}
	if _, err := a.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unregistered: %v", err)
	}
}

// TestClaimLapsesWithoutConfirmation: a node cut off from etcd (no
// confirmation answered) stops serving delay - margin after the send of
// its last confirmation, whatever Done says, and a confirmation that
// comes back late does not restore what has lapsed beyond its own send.
func TestClaimLapsesWithoutConfirmation(t *testing.T) {
	a := newHost(t, "a", edgeDelay, 1)
	w := &world{hosts: []*host{a}}
	tbl := tableAt(1, 10, "a", 1, tenure{})
	a.confirmNow(tbl)
	w.advance(edgeDelay)
	sent := a.clk.Mono()
	a.confirmNow(tbl)
	c, err := a.st.claimFor(0)
	if err != nil {
		t.Fatal(err)
	}
	w.advance(edgeDelay - edgeMargin - time.Nanosecond)
	if c.Headroom() <= 0 {
		t.Fatal("lapsed early")
	}
	w.advance(time.Nanosecond)
	if c.Headroom() > 0 || c.(*routedClaim).dl.Live() {
		t.Fatalf("alive %v after its last confirmation's send", a.clk.Mono()-sent)
	}
	if _, err := a.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the right: %v", err)
	}
	if err := a.st.ready(); err == nil {
		t.Fatal("ready while unconfirmed")
	}
}

// TestActivatingCounts: only groups waiting their delay count as
// activating; /readyz says so.
func TestActivatingCounts(t *testing.T) {
	a := newHost(t, "a", edgeDelay, 1)
	w := &world{hosts: []*host{a}}
	tbl := tableAt(1, 10, "a", 1, tenure{})
	a.confirmNow(tbl)
	if owned, act, left := a.st.counts(); owned != 1 || act != 1 || left != edgeDelay {
		t.Fatalf("counts %d %d %v", owned, act, left)
	}
	if err := a.st.ready(); err == nil {
		t.Fatal("ready while activating")
	}
	w.advance(edgeDelay)
	a.confirmNow(tbl)
	if owned, act, _ := a.st.counts(); owned != 1 || act != 0 {
		t.Fatalf("after the delay: counts %d %d", owned, act)
	}
	if err := a.st.ready(); err != nil {
		t.Fatalf("not ready after the delay: %v", err)
	}
}

// TestRoutedClaimDeadline: the deadline a group checks on the hot path
// answers as Headroom does, through extensions and the end.
func TestRoutedClaimDeadline(t *testing.T) {
	m := clock.NewManual(time.Unix(1_700_000_000, 0))
	c := newRoutedClaim(m, 0, tenure{}, time.Second, nil)
	g := &group{claim: c, dl: c.deadline()}
	for i, step := range []struct {
		advance time.Duration
		do      func()
		live    bool
	}{
		{0, nil, true},
		{999 * time.Millisecond, nil, true},
		{time.Millisecond, nil, false},
		{0, func() { c.extend(500 * time.Millisecond) }, false},
		{0, func() { c.extend(2 * time.Second) }, true},
		{0, c.end, false},
		{0, func() { c.extend(time.Hour) }, false},
	} {
		m.Advance(step.advance)
		if step.do != nil {
			step.do()
		}
		if got, h := g.live(), c.Headroom(); got != step.live || (h > 0) != step.live {
			t.Fatalf("step %d: live %v, Headroom %v; want live %v", i, got, h, step.live)
		}
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done open after end")
	}
}

// TestOldTableWrittenBack: an old table's value written back by hand (a
// newer revision, an older version) is refused: it would give a group
// back to a tenure that ended, whose release the node may remember, while
// the current owner still serves.
func TestOldTableWrittenBack(t *testing.T) {
	b := newHost(t, "b", edgeDelay, 1)
	w := &world{hosts: []*host{b}}
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	v2 := tableAt(2, 20, "b", 2, aTenure)
	b.st.observe(v2, b.clk.Mono())
	b.confirmNow(v2)
	b.st.releasedSeen(rel(aTenure))
	if _, err := b.st.claimFor(0); err != nil {
		t.Fatal(err)
	}
	// v3 hands the group to c; b releases it.
	v3 := tableAt(3, 30, "c", 3, tenure{Node: "b", Reg: edgeReg, Since: 2})
	b.st.observe(v3, b.clk.Mono())
	w.advance(10 * time.Millisecond)
	// An operator writes v2's value back: revision 40, version 2.
	undo := tableAt(2, 40, "b", 2, aTenure)
	b.st.observe(undo, b.clk.Mono())
	b.confirmNow(undo)
	if _, err := b.st.claimFor(0); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("b after an old table was written back: %v, want ErrNotOwner (v3 still stands)", err)
	}
	// The arbiter's next table is above every version seen: version 41,
	// the revision it read at, not v3+1 again.
	lay := newLayout(edgeConfig("x", edgeDelay))
	next, changed := nextTable(undo, []string{"x", "x", "x", "x"}, undo.members, lay, 40, nil)
	if !changed || next.Version <= 3 {
		t.Fatalf("the table after the undo has version %d, reusing tenures", next.Version)
	}
}

// rel is group 0's release of tenure t, with no state.
func rel(t tenure) map[int]released { return map[int]released{0: {t: t}} }

// confirmedHost is a host named name that has seen and confirmed table
// t.
func confirmedHost(t *testing.T, name string, tbl *table) *host {
	h := newHost(t, name, edgeDelay, 1)
	h.st.observe(tbl, h.clk.Mono())
	h.confirmNow(tbl)
	return h
}

// TestHandoffStateFirstLoadOnly: a release's state serves only the first
// load of the tenure that follows exactly the tenure released. Loaded once
// (from the state, or by a read because the release arrived after the
// load), the group may have been served above that state, so a second
// load must read etcd.
func TestHandoffStateFirstLoadOnly(t *testing.T) {
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	state := &handoffState{floor: []uint64{100}, max: []uint64{200}, rev: 7}
	withState := func(tn tenure) map[int]released { return map[int]released{0: {t: tn, state: state}} }
	next := tableAt(2, 20, "b", 2, aTenure)
	newB := func() *host { return confirmedHost(t, "b", next) }

	b := newB()
	b.st.releasedSeen(withState(tenure{Node: "a", Reg: edgeReg + 1, Since: 1})) // another incarnation's
	b.st.releasedSeen(withState(aTenure))
	if hs := b.st.takeFirstLoad(0).handoff; hs != state {
		t.Fatalf("first load after the release: %v, want the released state", hs)
	}
	if b.st.takeFirstLoad(0).handoff != nil {
		t.Fatal("second load of the tenure served from the handoff state again")
	}

	// The release arrives after B loaded the group by a read (its delay
	// passed first): B may have served above the state, which must not
	// serve a later load.
	b = newB()
	w := &world{hosts: []*host{b}}
	w.advance(edgeDelay)
	b.confirmNow(next)
	if _, err := b.st.claimFor(0); err != nil {
		t.Fatalf("B after its delay: %v", err)
	}
	if b.st.takeFirstLoad(0).handoff != nil {
		t.Fatal("a handoff state before any release")
	}
	b.st.releasedSeen(withState(aTenure))
	if b.st.takeFirstLoad(0).handoff != nil {
		t.Fatal("a load after a load by a read served from a release read later")
	}
}

// TestReadAheadFirstLoadOnly: a group read by a confirmation serves the
// first load of the tenure its table began, once; a release's state goes
// first; a read along with a table that did not begin the tenure held is
// not kept.
func TestReadAheadFirstLoadOnly(t *testing.T) {
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	next := tableAt(2, 20, "b", 2, aTenure)
	read := map[int]GroupState{0: {MaxSeqs: []uint64{300}, Revision: 9}}
	newB := func() *host { return confirmedHost(t, "b", next) }

	b := newB()
	if got := b.st.toRead(); !slices.Equal(got, []int{0}) {
		t.Fatalf("groups to read: %v, want [0]", got)
	}
	b.st.readSeen(next, read)
	if got := b.st.toRead(); len(got) != 0 {
		t.Fatalf("groups to read after a read: %v", got)
	}
	if f := b.st.takeFirstLoad(0); f.read == nil || f.read.Revision != 9 || f.handoff != nil {
		t.Fatalf("first load: %+v, want the read", f)
	}
	if f := b.st.takeFirstLoad(0); f.read != nil || f.handoff != nil {
		t.Fatalf("second load of the tenure: %+v, want a read of its own", f)
	}

	// A release's state goes before a read.
	b = newB()
	b.st.readSeen(next, read)
	state := &handoffState{floor: []uint64{100}, max: []uint64{200}, rev: 7}
	b.st.releasedSeen(map[int]released{0: {t: aTenure, state: state}})
	if f := b.st.takeFirstLoad(0); f.handoff != state {
		t.Fatalf("first load after a read and a release: %+v, want the release's state", f)
	}

	// A read along with an older table, whose tenure of the group is not
	// the one b holds, is dropped.
	b = newB()
	older := tableAt(1, 10, "b", 1, tenure{})
	b.st.readSeen(older, read)
	if f := b.st.takeFirstLoad(0); f.read != nil {
		t.Fatalf("first load from a read along with another tenure's table: %+v", f)
	}
}

// TestGroupRuns: a confirmation reads groups in runs of consecutive
// ones, within its bounds.
func TestGroupRuns(t *testing.T) {
	lay := newLayout(edgeConfig("x", edgeDelay))
	if got := groupRuns([]int{1, 2, 3, 7, 9, 10}, lay); !slices.Equal(got, [][2]int{{1, 3}, {7, 7}, {9, 10}}) {
		t.Fatalf("runs %v", got)
	}
	if got := groupRuns(nil, lay); len(got) != 0 {
		t.Fatalf("runs of none: %v", got)
	}
	var apart, many []int
	for g := range 3 * confirmReadGroups {
		apart = append(apart, 2*g)
		many = append(many, g)
	}
	if got := groupRuns(apart, lay); len(got) != confirmReadRuns || got[confirmReadRuns-1][1] != 2*(confirmReadRuns-1) {
		t.Fatalf("runs of groups apart: %v, want the first %d", got, confirmReadRuns)
	}
	if got := groupRuns(many, lay); len(got) != 1 || got[0] != [2]int{0, confirmReadGroups - 1} {
		t.Fatalf("runs of %d consecutive groups: %v, want the first %d", len(many), got, confirmReadGroups)
	}
}

// TestRepeatedTenureWaits: after an old table's value is written back (or
// etcd restored), the arbiter's next table keeps the tenure of an owner
// whose incarnation did not change: b gets its old tenure again, same
// since and prev, though c held the group in between. The release of
// that prev, which b remembers, vouches for nothing now, and its handoff
// state was used: b waits its activation delay and reads the group.
func TestRepeatedTenureWaits(t *testing.T) {
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	state := &handoffState{floor: []uint64{100}, max: []uint64{200}, rev: 7}
	b := newHost(t, "b", edgeDelay, 1)
	w := &world{hosts: []*host{b}}
	v2 := tableAt(2, 20, "b", 2, aTenure)
	b.st.observe(v2, b.clk.Mono())
	b.confirmNow(v2)
	b.st.releasedSeen(map[int]released{0: {t: aTenure, state: state}})
	if _, err := b.st.claimFor(0); err != nil {
		t.Fatal(err)
	}
	if hs := b.st.takeFirstLoad(0).handoff; hs != state {
		t.Fatal("first load: no handoff state")
	}
	// b serves 101.. from the state. v3 moves group 0 to c.
	v3 := tableAt(3, 30, "c", 3, tenure{Node: "b", Reg: edgeReg, Since: 2})
	b.st.observe(v3, b.clk.Mono())
	b.confirmNow(v3)
	// v2's value written back (revision 40); the arbiter's next table,
	// when anything changes (group 1 goes to y), keeps b's tenure.
	undo := tableAt(2, 40, "b", 2, aTenure)
	lay := newLayout(edgeConfig("x", edgeDelay))
	members := map[string]member{"x": {Reg: edgeReg}, "b": {Reg: edgeReg, Address: "b:1"}, "y": {Reg: edgeReg}}
	next, changed := nextTable(undo, []string{"b", "y", "x", "x"}, members, lay, 40, nil)
	if !changed || next.since[0] != 2 || next.prev[0] != aTenure {
		t.Fatalf("the arbiter's table after the undo: changed %v, group 0 since %d prev %+v; this test wants the tenure kept", changed, next.since[0], next.prev[0])
	}
	next.rev = 41
	b.st.observe(next, b.clk.Mono())
	b.confirmNow(next)
	if _, err := b.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("b on its repeated tenure, before its delay: %v, want ErrUnavailable (activating)", err)
	}
	if hs := b.st.takeFirstLoad(0).handoff; hs != nil {
		t.Fatalf("b loads group 0 from a's handoff state again: floor %v max %v", hs.floor, hs.max)
	}
	w.advance(edgeDelay)
	b.confirmNow(next)
	if _, err := b.st.claimFor(0); err != nil {
		t.Fatalf("b after its delay: %v", err)
	}
}

// TestWatchedGroupUnderLatestRight: a group a watched table gives the
// node, its previous tenure released, is served at once under the right
// of the node's latest confirmation (which read an older table, so was
// sent before any table that could end the new tenure), never longer,
// and not at all when there is no such right: none since the node
// registered, or since its lease lapsed. A group whose predecessor did
// not release it is not served under a lent right: it waits for a
// confirmation of its table, which reads it ahead.
func TestWatchedGroupUnderLatestRight(t *testing.T) {
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	old := tableAt(1, 10, "a", 1, tenure{})
	next := tableAt(2, 20, "b", 2, aTenure)
	claim := edgeDelay - edgeMargin

	b := newHost(t, "b", edgeDelay, 1)
	w := &world{hosts: []*host{b}}
	sent := b.clk.Mono()
	b.confirmNow(old) // B's latest confirmation: A's table
	w.advance(300 * time.Millisecond)
	b.st.observe(next, b.clk.Mono())
	b.st.releasedSeen(rel(aTenure))
	c, err := b.st.claimFor(0)
	if err != nil {
		t.Fatalf("B, the release read, with a right from its latest confirmation: %v", err)
	}
	if h, want := c.Headroom(), sent+claim-b.clk.Mono(); h != want {
		t.Fatalf("B's headroom %v, want %v: the latest confirmation's right, no more", h, want)
	}
	w.advance(claim)
	if _, err := b.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("B past its latest confirmation's right: %v", err)
	}
	b.confirmNow(next)
	if _, err := b.st.claimFor(0); err != nil {
		t.Fatalf("B confirmed again: %v", err)
	}

	// Not released (its delay passed: a crash): the right is not lent,
	// and the group waits for a confirmation of its own table, which
	// reads it ahead for its first load.
	f := newHost(t, "b", edgeDelay, 1)
	wf := &world{hosts: []*host{f}}
	f.confirmNow(old)
	wf.advance(100 * time.Millisecond)
	f.st.observe(next, f.clk.Mono())
	wf.advance(edgeDelay)
	f.confirmNow(old) // a confirmation that read the older table
	var act *activatingError
	if _, err := f.st.claimFor(0); !errors.As(err, &act) {
		t.Fatalf("B, its predecessor not released, before a confirmation of its table: %v", err)
	}
	f.confirmNow(next)
	if _, err := f.st.claimFor(0); err != nil {
		t.Fatalf("B, its table confirmed, its delay over: %v", err)
	}

	// No confirmation since the lease lapsed: no right to lend.
	d := newHost(t, "b", edgeDelay, 1)
	d.confirmNow(old)
	d.st.suspend()
	d.st.resume()
	d.st.observe(next, d.clk.Mono())
	d.st.releasedSeen(rel(aTenure))
	if _, err := d.st.claimFor(0); !errors.As(err, &act) {
		t.Fatalf("B after a lapse, no confirmation since: %v", err)
	}
	// Nor from an earlier registration.
	e := newHost(t, "b", edgeDelay, 1)
	e.confirmNow(old)
	e.st.begin(edgeReg)
	e.st.observe(next, e.clk.Mono())
	e.st.releasedSeen(rel(aTenure))
	if _, err := e.st.claimFor(0); !errors.As(err, &act) {
		t.Fatalf("B registered again, no confirmation since: %v", err)
	}
}

// TestReleaseHeldForPull: a tenure moved to another live node is held
// back from etcd for pullWindow, for that node to ask for it; once asked
// (startPull) it stays held until handed over (pulledDone), then is due
// at once. A tenure that ends with no live successor is due at once.
func TestReleaseHeldForPull(t *testing.T) {
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	a, w := servingHost(t)
	if ended, tick := a.st.tenureEnded(0, aTenure); ended || tick == nil {
		t.Fatal("A's tenure ended before any move")
	}
	a.st.observe(tableAt(2, 20, "b", 2, aTenure), a.clk.Mono())
	if ended, _ := a.st.tenureEnded(0, aTenure); !ended {
		t.Fatal("A's tenure not ended after the move")
	}
	due, next := a.st.dueReleases()
	if len(due) != 0 || next != a.clk.Mono()+pullWindow {
		t.Fatalf("due %+v, next %v: want none, next in %v", due, next, pullWindow)
	}
	if a.st.startPull(0, tenure{Node: "a", Reg: edgeReg, Since: 2}) {
		t.Fatal("startPull found a tenure A never held")
	}
	if !a.st.startPull(0, aTenure) || a.st.startPull(0, aTenure) {
		t.Fatal("startPull: want the tenure once")
	}
	w.advance(pullWindow)
	if due, _ := a.st.dueReleases(); len(due) != 0 {
		t.Fatalf("a release being handed over came due: %+v", due)
	}
	a.st.pulledDone(0, aTenure)
	if due, next := a.st.dueReleases(); len(due) != 1 || due[0].t != aTenure || !due[0].pulled || next != 0 {
		t.Fatalf("after the handover: due %+v next %v", due, next)
	}

	// Not asked for: due once the window has passed.
	a, w = servingHost(t)
	a.st.observe(tableAt(2, 20, "b", 2, aTenure), a.clk.Mono())
	w.advance(pullWindow - time.Nanosecond)
	if due, _ := a.st.dueReleases(); len(due) != 0 {
		t.Fatalf("due before the window passed: %+v", due)
	}
	w.advance(time.Nanosecond)
	if due, _ := a.st.dueReleases(); len(due) != 1 || due[0].pulled {
		t.Fatalf("after the window: %+v", due)
	}

	// The registration ends: nobody to ask, due at once.
	a, _ = servingHost(t)
	a.st.end()
	if due, next := a.st.dueReleases(); len(due) != 1 || next != 0 {
		t.Fatalf("at the registration's end: due %+v next %v", due, next)
	}
}

// servingHost is host "a" serving group 0 in its tenure since 1, its
// delay passed, and its world.
func servingHost(t *testing.T) (*host, *world) {
	t.Helper()
	a := newHost(t, "a", edgeDelay, 1)
	w := &world{hosts: []*host{a}}
	a.confirmNow(tableAt(1, 10, "a", 1, tenure{}))
	w.advance(edgeDelay)
	a.confirmNow(tableAt(1, 10, "a", 1, tenure{}))
	if _, err := a.st.claimFor(0); err != nil {
		t.Fatal(err)
	}
	return a, w
}

// TestToPull: the next owner asks the previous owner it waits for, at the
// address the table gives (or the one before, which still named it), once
// a tenure; not a tenure released already, nor one of its own name.
func TestToPull(t *testing.T) {
	b := newHost(t, "b", edgeDelay, 1)
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	b.st.observe(tableAt(1, 10, "a", 1, tenure{}), b.clk.Mono())
	// The new table lists only owners: a is named by the old one only.
	lay := newLayout(edgeConfig("x", edgeDelay))
	next := newTable(2, []string{"b", "x", "x", "x"}, []uint64{2, 1, 1, 1}, []tenure{aTenure, {}, {}, {}}, nil,
		map[string]member{"b": {Reg: edgeReg, Address: "b:1"}, "x": {Reg: edgeReg}}, 20, lay)
	b.st.observe(next, b.clk.Mono())
	got := b.st.toPull()
	if len(got) != 1 || len(got["a:1"]) != 1 || got["a:1"][0] != (pullItem{group: 0, prev: aTenure}) {
		t.Fatalf("toPull: %+v", got)
	}
	if again := b.st.toPull(); len(again) != 0 {
		t.Fatalf("asked twice: %+v", again)
	}
	c := newHost(t, "c", edgeDelay, 1)
	c.st.observe(tableAt(1, 10, "a", 1, tenure{}), c.clk.Mono())
	c.st.releasedSeen(rel(aTenure))
	c.st.observe(tableAt(2, 20, "c", 2, aTenure), c.clk.Mono())
	if got := c.st.toPull(); len(got) != 0 {
		t.Fatalf("asked for a tenure released already: %+v", got)
	}
}

// TestRequeueClearsPulling: a release being handed over that a forced
// write took (the registration ended) and could not write is put back
// due, not held for a handover that will never say it is done.
func TestRequeueClearsPulling(t *testing.T) {
	aTenure := tenure{Node: "a", Reg: edgeReg, Since: 1}
	a, w := servingHost(t)
	a.st.observe(tableAt(2, 20, "b", 2, aTenure), a.clk.Mono())
	if !a.st.startPull(0, aTenure) {
		t.Fatal("startPull")
	}
	taken := a.st.releases()
	a.st.pulledDone(0, aTenure)
	a.st.requeue(taken)
	w.advance(pullWindow)
	if due, next := a.st.dueReleases(); len(due) != 1 || next != 0 {
		t.Fatalf("after a failed forced write: due %+v, next %v", due, next)
	}
}

// TestOlderReleaseSuperseded: a release held back for its next owner is
// dropped when a newer tenure of the same group is released: written
// after it, it would hide the newer one.
func TestOlderReleaseSuperseded(t *testing.T) {
	a, w := servingHost(t)
	t1 := tenure{Node: "a", Reg: edgeReg, Since: 1}
	a.st.observe(tableAt(2, 20, "b", 2, t1), a.clk.Mono()) // held for b
	bTenure := tenure{Node: "b", Reg: edgeReg, Since: 2}
	a.st.observe(tableAt(3, 30, "a", 3, bTenure), a.clk.Mono())
	a.st.releasedSeen(rel(bTenure))                             // t3 may activate at once
	a.st.observe(tableAt(4, 40, "", 4, tenure{}), a.clk.Mono()) // t3 ends, nobody to ask: due at once
	due, _ := a.st.dueReleases()
	if len(due) != 1 || due[0].t.Since != 3 {
		t.Fatalf("due %+v: want only the tenure since 3", due)
	}
	w.advance(pullWindow)
	if due, next := a.st.dueReleases(); len(due) != 0 || next != 0 {
		t.Fatalf("the older release came due after the newer: %+v, next %v", due, next)
	}
}

// TestPulledOlderNotWrittenAfterNewer: an older tenure's release, held
// while its next owner takes it, is not written once a newer tenure's
// release of the group came due meanwhile (it would hide it), neither by
// the errands nor by a forced write after the newer one's write failed.
func TestPulledOlderNotWrittenAfterNewer(t *testing.T) {
	for _, forced := range []bool{false, true} {
		a, w := servingHost(t)
		t1 := tenure{Node: "a", Reg: edgeReg, Since: 1}
		a.st.observe(tableAt(2, 20, "b", 2, t1), a.clk.Mono())
		if !a.st.startPull(0, t1) {
			t.Fatal("startPull")
		}
		bTenure := tenure{Node: "b", Reg: edgeReg, Since: 2}
		a.st.observe(tableAt(3, 30, "a", 3, bTenure), a.clk.Mono())
		a.st.releasedSeen(rel(bTenure))
		a.st.observe(tableAt(4, 40, "", 4, tenure{}), a.clk.Mono())
		due, _ := a.st.dueReleases()
		if len(due) != 1 || due[0].t.Since != 3 {
			t.Fatalf("due %+v: want the tenure since 3", due)
		}
		a.st.pulledDone(0, t1)
		w.advance(pullWindow)
		var got []release
		if forced {
			a.st.requeue(due) // the newer one's write failed
			got = a.st.releases()
		} else {
			got, _ = a.st.dueReleases()
		}
		for _, r := range got {
			if r.t.Since == 1 {
				t.Fatalf("forced %v: the older release came due after the newer: %+v", forced, got)
			}
		}
	}
}
