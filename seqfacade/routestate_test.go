package seqfacade

import (
	"errors"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/lease"
)

// The edges of docs/seq-failover.md on manual clocks: two hosts, old
// owner A and new owner B, each with its own clock; "true" time is what
// the test moves, and each host's clock follows it at its own rate.

const (
	edgeTTL    = 2 * time.Second
	edgeMargin = 500 * time.Millisecond
)

// host is a node's routeState on its own manual clock, which runs at
// rate (1 = true time).
type host struct {
	st   *routeState
	clk  *clock.Manual
	rate float64
}

func newHost(t *testing.T, name string, delay time.Duration, rate float64) *host {
	t.Helper()
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	lay := newLayout(Config{SectionSize: 10, GroupSize: 1, UIDLimit: 40}.withDefaults())
	h := &host{st: newRouteState(name, clk, delay, edgeMargin, "/r", "/n/"+name, lay.groups), clk: clk, rate: rate}
	h.st.begin(1)
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

// tableAt is a routing table of 4 groups; group 0 owned by owner0, given
// at since0; the others by "x".
func tableAt(version uint64, rev int64, owner0 string, since0 uint64) *table {
	lay := newLayout(Config{SectionSize: 10, GroupSize: 1, UIDLimit: 40}.withDefaults())
	return newTable(RoutingTable{Version: version, Owners: []string{owner0, "x", "x", "x"}},
		[]uint64{since0, 1, 1, 1}, map[string]member{}, rev, lay)
}

// TestRoutingEdges: at the moment the new owner may first serve a group,
// the old owner's right to serve it has run out, by at least the margin
// when the clocks agree (and by the margin plus the slack of a longer
// activation delay), and still at all when the old owner's clock runs
// slow by less than margin/TTL; the worst case is a confirmation sent at
// the very moment the table changed, answered late. One tick earlier the
// new owner refuses.
func TestRoutingEdges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delay  time.Duration // B's activation delay
		rateA  float64       // A's clock rate
		ackLag time.Duration // A's renewal acknowledged this long after it was sent
		gap    time.Duration // A's read processed this long before the table changed
		seeLag time.Duration // B sees the new table this long after it committed
		want   time.Duration // A's headroom at B's activation, at most
	}{
		{"read at the commit, seen at once, delay = TTL", edgeTTL, 1, 0, 0, 0, -edgeMargin},
		{"late acknowledgement counts from the send", edgeTTL, 1, 900 * time.Millisecond, 0, 0, -edgeMargin},
		{"read well before the commit", edgeTTL, 1, 0, 700 * time.Millisecond, 0, -edgeMargin - 700*time.Millisecond},
		{"seen late", edgeTTL, 1, 0, 0, 300 * time.Millisecond, -edgeMargin - 300*time.Millisecond},
		{"default delay TTL + margin", edgeTTL + edgeMargin, 1, 0, 0, 0, -2 * edgeMargin},
		{"A's clock 20% slow", edgeTTL, 0.8, 0, 0, 0, 0},
		{"A's clock 20% fast", edgeTTL, 1.2, 0, 0, 0, -edgeMargin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newHost(t, "a", edgeTTL, tc.rateA)
			b := newHost(t, "b", tc.delay, 1)
			w := &world{hosts: []*host{a, b}}
			old := tableAt(1, 10, "a", 1)
			next := tableAt(2, 20, "b", 2)

			// A has served group 0 for long.
			a.st.observe(old, a.clk.Mono())
			w.advance(3 * time.Second)
			a.st.confirm(old, lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
			if _, err := a.st.claim(0); err != nil {
				t.Fatalf("A cannot serve its group: %v", err)
			}
			b.st.observe(old, b.clk.Mono())
			if _, err := b.st.claim(0); !errors.Is(err, ErrNotOwner) {
				t.Fatalf("B on A's group: %v", err)
			}

			// A sends its last renewal; its read is processed gap before
			// the new table commits.
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
			a.st.confirm(old, lease.Renewal{Sent: sent, TTL: edgeTTL}, a.clk.Mono())
			// B confirms the new table on its next round.
			b.st.confirm(next, lease.Renewal{Sent: b.clk.Mono(), TTL: edgeTTL}, b.clk.Mono())

			// One tick before the activation, just after another round of
			// B's: B still refuses.
			w.advance(seen + tc.delay - b.clk.Mono() - time.Nanosecond)
			b.st.confirm(next, lease.Renewal{Sent: b.clk.Mono(), TTL: edgeTTL}, b.clk.Mono())
			if _, err := b.st.claim(0); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("B a tick before its activation: %v", err)
			}
			cA, errA := a.st.claim(0)
			w.advance(time.Nanosecond)
			cB, err := b.st.claim(0)
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
			h := (sent + min(edgeTTL, a.st.delay) - edgeMargin) - a.clk.Mono()
			if h > tc.want {
				t.Fatalf("A's deadline is %v away at B's activation, want at most %v", h, tc.want)
			}
			if _, err := a.st.claim(0); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("A at B's activation: %v, want ErrUnavailable", err)
			}
			t.Logf("A's right ran out %v before B's activation (by A's clock)", -h)
		})
	}
}

// TestRoutingMovedAwayAndBack: a node that missed the table moving its
// group away and only sees the one giving it back must wait the
// activation delay again (since changed), and its old claim ends at once.
func TestRoutingMovedAwayAndBack(t *testing.T) {
	a := newHost(t, "a", edgeTTL, 1)
	w := &world{hosts: []*host{a}}
	a.st.confirm(tableAt(1, 10, "a", 1), lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	w.advance(edgeTTL)
	a.st.confirm(tableAt(1, 10, "a", 1), lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	c, err := a.st.claim(0)
	if err != nil {
		t.Fatal(err)
	}
	// Version 2 gave group 0 to b; version 3 gives it back at since 3.
	a.st.confirm(tableAt(3, 30, "a", 3), lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	select {
	case <-c.Done():
	default:
		t.Fatal("the old claim survived a new since")
	}
	if c.Headroom() > 0 {
		t.Fatal("an ended claim has headroom")
	}
	if _, err := a.st.claim(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("given back: %v, want ErrUnavailable until the delay passes", err)
	}
	w.advance(edgeTTL)
	a.st.confirm(tableAt(3, 30, "a", 3), lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	if c2, err := a.st.claim(0); err != nil || c2 == c {
		t.Fatalf("after the delay: %v (same claim: %v)", err, c2 == c)
	}
	// A table that keeps the group (same since) keeps the claim, with a
	// proof naming the new revision.
	c3, _ := a.st.claim(0)
	a.st.confirm(tableAt(4, 40, "a", 3), lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	if c4, err := a.st.claim(0); err != nil || c4 != c3 {
		t.Fatalf("kept group: %v (same claim: %v)", err, c4 == c3)
	}
	if p := c3.Proof(); len(p) != 2 || p[0].GetCompare().GetModRevision() != 40 || p[1].GetCompare().GetCreateRevision() != 1 {
		t.Fatalf("proof %v, want the routing key at revision 40 and the registration at 1", p)
	}
}

// TestRoutingStaleConfirmation: a confirmation of an older table than
// one already seen (a watch delivered the newer first) neither extends
// nor revives anything.
func TestRoutingStaleConfirmation(t *testing.T) {
	a := newHost(t, "a", edgeTTL, 1)
	w := &world{hosts: []*host{a}}
	old := tableAt(1, 10, "a", 1)
	a.st.confirm(old, lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	w.advance(edgeTTL)
	a.st.confirm(old, lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	c, err := a.st.claim(0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := c.(*routedClaim).dl.At()
	a.st.observe(tableAt(2, 20, "b", 2), a.clk.Mono())
	if _, err := a.st.claim(0); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("after the move: %v", err)
	}
	w.advance(time.Second)
	a.st.confirm(old, lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	if _, err := a.st.claim(0); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("after a stale confirmation: %v", err)
	}
	if c.Headroom() > 0 || c.(*routedClaim).dl.At() != deadline {
		t.Fatalf("the ended claim was extended: headroom %v", c.Headroom())
	}
	// Losing the registration ends every claim.
	a.st.confirm(tableAt(3, 30, "a", 3), lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	w.advance(edgeTTL)
	a.st.confirm(tableAt(3, 30, "a", 3), lease.Renewal{Sent: a.clk.Mono(), TTL: edgeTTL}, a.clk.Mono())
	c, err = a.st.claim(0)
	if err != nil {
		t.Fatal(err)
	}
	a.st.end()
	if c.Headroom() > 0 {
		t.Fatal("claim outlived its registration")
	}
	if _, err := a.st.claim(0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unregistered: %v", err)
	}
}

// TestRoutedClaimDeadline: the deadline a group checks on the hot path
// answers as Headroom does, through extensions and the end.
func TestRoutedClaimDeadline(t *testing.T) {
	m := clock.NewManual(time.Unix(1_700_000_000, 0))
	c := newRoutedClaim(m, 0, time.Second, nil)
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
