package seqfacade

import (
	"errors"
	"reflect"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The edges of the arbiter's vouching (quiet.go, docs/seq-failover.md
// "After a crash"), on manual clocks: old owner A, the arbiter, new owner
// B, each on its own clock.

// vouchedTable is tableAt with group 0's previous tenure vouched over.
func vouchedTable(version uint64, rev int64, owner0 string, since0 uint64, prev0 tenure) *table {
	t := tableAt(version, rev, owner0, since0, prev0)
	t.over[0] = true
	return t
}

// TestVouchEdges: the arbiter vouches for A's tenure exactly the
// activation delay after it learned of A's last confirmation, not a tick
// before; B, given the group by a table that says so, serves at once, and
// A's right has run out by then: by the margin when the clocks agree, at
// all when A's clock runs 19% slow, whatever the lags.
func TestVouchEdges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rateA    float64
		learnLag time.Duration // the arbiter learns of A's put this long after A sent it
		ackLag   time.Duration // A's answer arrives this long after that
		want     time.Duration // A's headroom at B's activation, at most
	}{
		{"put learned at once", 1, 0, 0, -edgeMargin},
		{"put learned late", 1, 300 * time.Millisecond, 0, -edgeMargin - 300*time.Millisecond},
		{"answer late, counts from the send", 1, 0, 700 * time.Millisecond, -edgeMargin},
		{"A's clock 19% slow", 0.81, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newHost(t, "a", edgeDelay, tc.rateA)
			b := newHost(t, "b", edgeDelay, 1)
			arb := newHost(t, "arb", edgeDelay, 1) // its clock only
			q := newQuiet(edgeDelay, edgeDelay/4, 0)
			w := &world{hosts: []*host{a, b, arb}}
			old := tableAt(1, 10, "a", 1, tenure{})
			a.st.observe(old, a.clk.Mono())
			b.st.observe(old, b.clk.Mono())
			q.tableSeen(1, arb.clk.Mono())
			w.advance(3 * time.Second)

			// A's last confirmation: sent, its put processed at once, and
			// learned of by the arbiter learnLag later.
			sent := a.clk.Mono()
			w.advance(tc.learnLag)
			q.confirmSeen("a", confirmRead{11, edgeReg}, arb.clk.Mono())
			learned := arb.clk.Mono()
			w.advance(tc.ackLag)
			a.st.confirm(old, sent, a.clk.Mono())
			if _, err := a.st.claimFor(0); err != nil {
				t.Fatalf("A cannot serve its group: %v", err)
			}
			// A dies, or is cut off.
			prev := tenure{Node: "a", Reg: edgeReg, Since: 1}
			w.advance(learned + edgeDelay - arb.clk.Mono() - time.Nanosecond)
			v := q.vouching(arb.clk.Mono())
			if v.over(2, prev) {
				t.Fatalf("vouched a tick before the delay since the last put was learned of")
			}
			if v.next != learned+edgeDelay {
				t.Fatalf("next vouching at %v, want %v", v.next, learned+edgeDelay)
			}
			w.advance(time.Nanosecond)
			v = q.vouching(arb.clk.Mono())
			if !v.over(2, prev) {
				t.Fatalf("not vouched at the delay since the last put was learned of")
			}
			want := clientv3.Compare(clientv3.ModRevision("confirmed/a"), "=", 11)
			if cmps := v.cmps(func(n string) string { return "confirmed/" + n }); len(cmps) != 1 || !reflect.DeepEqual(cmps[0], want) {
				t.Fatalf("the write's comparisons: %+v, want confirmed/a's ModRevision 11", cmps)
			}
			// The table commits after the check; B sees it and confirms.
			next := vouchedTable(2, 20, "b", 2, prev)
			b.st.observe(next, b.clk.Mono())
			b.confirmNow(next)
			cA, errA := a.st.claimFor(0)
			cB, err := b.st.claimFor(0)
			if err != nil {
				t.Fatalf("B on a vouched table: %v", err)
			}
			if cB.Headroom() <= 0 || b.st.vouched.Load() != 1 {
				t.Fatalf("B's claim: headroom %v, %d vouched starts", cB.Headroom(), b.st.vouched.Load())
			}
			if errA == nil {
				if h := cA.Headroom(); h > tc.want {
					t.Fatalf("A's headroom at B's activation is %v, want at most %v", h, tc.want)
				}
			}
			if h := (sent + edgeDelay - edgeMargin) - a.clk.Mono(); h > tc.want {
				t.Fatalf("A's right ends %v away at B's activation, want at most %v", h, tc.want)
			}
			if _, err := a.st.claimFor(0); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("A at B's activation: %v, want ErrUnavailable", err)
			}
		})
	}
}

// TestVouchNeedsOldTenure: the tenures before A's ended with the table
// that began A's; until the delay after the arbiter saw that table, A's
// tenure is not vouched for however long A has been silent (its
// predecessor may serve yet). Nor is a node whose confirm key the
// arbiter never saw, or found deleted; and a tenure that began more than
// a delay ago is not asked about (its owner serves by now).
func TestVouchNeedsOldTenure(t *testing.T) {
	arb := newHost(t, "arb", edgeDelay, 1)
	q := newQuiet(edgeDelay, edgeDelay/4, 0)
	q.confirmSeen("a", confirmRead{11, edgeReg}, arb.clk.Mono())
	arb.clk.Advance(5 * time.Second)
	q.tableSeen(7, arb.clk.Mono()) // the table that began A's tenure
	began := arb.clk.Mono()
	prev := tenure{Node: "a", Reg: edgeReg, Since: 7}

	arb.clk.Advance(edgeDelay - time.Nanosecond)
	if v := q.vouching(arb.clk.Mono()); v.over(9, prev) || v.next != began+edgeDelay {
		t.Fatalf("vouched within the delay of the table that began the tenure (next %v)", v.next)
	}
	arb.clk.Advance(time.Nanosecond)
	if !q.vouching(arb.clk.Mono()).over(9, prev) {
		t.Fatalf("not vouched a delay after the table and the put")
	}
	if q.vouching(arb.clk.Mono()).over(9, tenure{Node: "c", Reg: edgeReg, Since: 7}) {
		t.Fatalf("vouched for a node whose confirm key was never seen")
	}
	q.confirmsRead(map[string]confirmRead{}, 12, arb.clk.Mono())
	arb.clk.Advance(10 * time.Second)
	if q.vouching(arb.clk.Mono()).over(9, prev) {
		t.Fatalf("vouched for a node whose confirm key was found deleted")
	}
	q.confirmsRead(map[string]confirmRead{"a": {13, edgeReg}}, 14, arb.clk.Mono())
	arb.clk.Advance(edgeDelay)
	if !q.vouching(arb.clk.Mono()).over(9, prev) {
		t.Fatalf("not vouched a delay after the key was put again")
	}
	q.tableSeen(9, arb.clk.Mono())
	arb.clk.Advance(edgeDelay)
	if q.vouching(arb.clk.Mono()).over(9, prev) {
		t.Fatalf("asked about a tenure that began a delay ago")
	}
	// A put learned of later than one already known never moves its
	// sighting back; an older revision read does not either.
	q.confirmSeen("a", confirmRead{13, edgeReg}, 0)
	q.confirmsRead(map[string]confirmRead{"a": {12, edgeReg}}, 12, 0)
	if v := q.vouching(arb.clk.Mono()); !v.over(20, prev) || v.revs["a"] != 13 {
		t.Fatalf("vouching after stale news: %+v", v.revs)
	}
	// The key was put by an earlier incarnation of a: it says nothing of
	// the incarnation whose tenure ends (which may be of a version that
	// does not put it, and serve yet).
	if q.vouching(arb.clk.Mono()).over(20, tenure{Node: "a", Reg: edgeReg + 5, Since: 7}) {
		t.Fatalf("vouched for an incarnation on another's confirm key")
	}
	// etcd restored from a backup under the running node: a key found
	// below the revision remembered, which the read covers, replaces it.
	q.confirmsRead(map[string]confirmRead{"a": {9, edgeReg}}, 14, arb.clk.Mono())
	if v := q.vouching(arb.clk.Mono()); v.over(20, prev) {
		t.Fatalf("vouched on a put learned of just now")
	}
	if c := q.mu.confirmed["a"]; (confirmRead{c.rev, c.reg}) != (confirmRead{9, edgeReg}) {
		t.Fatalf("confirm key after the restore: %+v", c)
	}
}

// TestSilentEdges: a node is silent a TTL after its incarnation's last
// put was learned of, not a tick before; never to a judge whose own
// confirmations had a gap (an election: nobody confirms) until the others
// have had grace to confirm again; never when the put is another
// incarnation's (just registered, or a version that does not put).
func TestSilentEdges(t *testing.T) {
	const ttl = 2 * time.Second
	clk := newHost(t, "arb", edgeDelay, 1).clk
	q := newQuiet(edgeDelay, edgeDelay/4, 0)
	grace := edgeDelay / 2
	if gone, _, _ := q.silent("a", edgeReg, ttl, clk.Mono()); gone {
		t.Fatal("silent before the judge ever confirmed")
	}
	q.selfConfirmed(clk.Mono())
	q.confirmSeen("a", confirmRead{11, edgeReg}, clk.Mono())
	put := clk.Mono()
	for clk.Mono()+edgeDelay/4 < put+ttl {
		clk.Advance(edgeDelay / 4)
		q.selfConfirmed(clk.Mono())
	}
	clk.Advance(put + ttl - time.Nanosecond - clk.Mono())
	q.selfConfirmed(clk.Mono())
	if gone, at, _ := q.silent("a", edgeReg, ttl, clk.Mono()); gone || at != put+ttl {
		t.Fatalf("a tick before the TTL: silent %v, at %v (want %v)", gone, at, put+ttl)
	}
	clk.Advance(time.Nanosecond)
	if gone, _, last := q.silent("a", edgeReg, ttl, clk.Mono()); !gone || last != (confirmRead{11, edgeReg}) {
		t.Fatalf("not silent a TTL after its last put, or judged on %+v", last)
	}
	if gone, _, _ := q.silent("a", edgeReg+1, ttl, clk.Mono()); gone {
		t.Fatal("a new incarnation judged on its predecessor's put")
	}
	// The judge's own confirmations stop (an election) and come back: it
	// gives the others grace to confirm again.
	clk.Advance(grace + time.Nanosecond)
	if gone, _, _ := q.silent("a", edgeReg, ttl, clk.Mono()); gone {
		t.Fatal("judged by a node whose own confirmations stopped")
	}
	q.selfConfirmed(clk.Mono())
	back := clk.Mono()
	if gone, at, _ := q.silent("a", edgeReg, ttl, clk.Mono()); gone || at != back+grace {
		t.Fatalf("right after the judge's outage: silent %v, at %v (want %v)", gone, at, back+grace)
	}
	clk.Advance(grace / 2)
	q.selfConfirmed(clk.Mono())
	clk.Advance(grace / 2)
	q.selfConfirmed(clk.Mono())
	if gone, _, _ := q.silent("a", edgeReg, ttl, clk.Mono()); !gone {
		t.Fatal("not silent after the grace")
	}
	q.confirmSeen("a", confirmRead{12, edgeReg}, clk.Mono())
	if gone, _, _ := q.silent("a", edgeReg, ttl, clk.Mono()); gone {
		t.Fatal("silent right after a put")
	}
	// A confirm key found deleted: judged no more.
	q.confirmsRead(map[string]confirmRead{}, 13, clk.Mono())
	clk.Advance(2 * ttl)
	q.selfConfirmed(clk.Mono())
	if gone, at, _ := q.silent("a", edgeReg, ttl, clk.Mono()); gone || at != 0 {
		t.Fatalf("judged on a deleted key: silent %v, at %v", gone, at)
	}
}

// TestVouchedTenures: B takes a vouched table's word for exactly the
// tenure it names as prev, also when a later table of the same tenure
// brings it; not for another tenure, and not for a tenure this
// incarnation held before (the group has had owners since).
func TestVouchedTenures(t *testing.T) {
	prev := tenure{Node: "a", Reg: edgeReg, Since: 1}
	b := newHost(t, "b", edgeDelay, 1)
	first := tableAt(2, 20, "b", 2, prev)
	b.st.observe(first, b.clk.Mono())
	b.confirmNow(first)
	var act *activatingError
	if _, err := b.st.claimFor(0); !errors.As(err, &act) {
		t.Fatalf("B before any vouching: %v", err)
	}
	other := vouchedTable(3, 30, "b", 2, tenure{Node: "a", Reg: edgeReg + 1, Since: 1})
	b.confirmNow(other)
	if _, err := b.st.claimFor(0); !errors.As(err, &act) {
		t.Fatalf("B on a vouching for another tenure: %v", err)
	}
	later := vouchedTable(4, 40, "b", 2, prev)
	b.confirmNow(later)
	if _, err := b.st.claimFor(0); err != nil {
		t.Fatalf("B on a later table vouching for its tenure's prev: %v", err)
	}

	// b held tenure 2 already: given it again by a table written back,
	// it waits its delay whatever the table says.
	b.st.confirm(vouchedTable(5, 50, "x", 5, tenure{Node: "b", Reg: edgeReg, Since: 2}), b.clk.Mono(), b.clk.Mono())
	again := vouchedTable(6, 60, "b", 2, prev)
	b.confirmNow(again)
	if _, err := b.st.claimFor(0); !errors.As(err, &act) {
		t.Fatalf("B on a repeated tenure, vouched: %v", err)
	}
}
