package seqfacade

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/seqfacade/route"
)

func testLayout() layout {
	return newLayout(Config{SectionSize: 10, GroupSize: 2, UIDLimit: 200}.withDefaults())
}

// TestTableRoundTrip: a table survives the routing key's encoding, since
// and members included, and its wire form routes every uid to its
// owner.
func TestTableRoundTrip(t *testing.T) {
	lay := testLayout()
	members := map[string]member{"a": {Address: "a:1", Datacenter: "tokyo", Reg: 5}, "b": {Address: "b:1", Reg: 6}}
	t1, changed := nextTable(nil, []string{"a", "a", "a", "b", "b", "a", "a", "b", "b", "b"}, members, lay, 1, nil)
	if !changed || t1.Version != 1 {
		t.Fatalf("first table: version %d, changed %v", t1.Version, changed)
	}
	// Group 2 moves to b: only its tenure changes, recording a's.
	t2, changed := nextTable(t1, []string{"a", "a", "b", "b", "b", "a", "a", "b", "b", "b"}, members, lay, 1, nil)
	if !changed || t2.Version != 2 || !slices.Equal(t2.since, []uint64{1, 1, 2, 1, 1, 1, 1, 1, 1, 1}) {
		t.Fatalf("second table: version %d, since %v", t2.Version, t2.since)
	}
	if p := t2.prev[2]; p != (tenure{Node: "a", Reg: 5, Since: 1}) {
		t.Fatalf("group 2's previous tenure %+v", p)
	}
	if _, changed := nextTable(t2, t2.Owners, members, lay, 1, nil); changed {
		t.Fatal("an unchanged table was rewritten")
	}
	moved := map[string]member{"a": {Address: "a:2", Reg: 5}, "b": {Address: "b:1", Reg: 6}}
	if t3, changed := nextTable(t2, t2.Owners, moved, lay, 1, nil); !changed || t3.Version != 3 || !slices.Equal(t3.since, t2.since) {
		t.Fatalf("a new address: changed %v, version %d, since %v", changed, t3.Version, t3.since)
	}
	// b registered again: every group of b's is a new tenure of the new
	// incarnation, after the old one's.
	again := map[string]member{"a": {Address: "a:1", Datacenter: "tokyo", Reg: 5}, "b": {Address: "b:1", Reg: 9}}
	t5, _ := nextTable(t2, t2.Owners, again, lay, 1, nil)
	for g, o := range t5.Owners {
		switch {
		case o == "b" && (t5.since[g] != 3 || t5.prev[g] != (tenure{Node: "b", Reg: 6, Since: t2.since[g]})):
			t.Fatalf("group %d after b's new registration: since %d, prev %+v", g, t5.since[g], t5.prev[g])
		case o == "a" && t5.since[g] != t2.since[g]:
			t.Fatalf("a's group %d changed tenure", g)
		}
	}

	// Written afresh after the key was deleted: above every version before.
	if t4, _ := nextTable(nil, t2.Owners, members, lay, 57, nil); t4.Version != 57 || t4.since[0] != 57 {
		t.Fatalf("a table after a deleted key: version %d, since %v", t4.Version, t4.since)
	}

	got, err := decodeTable(t2.encode(), 42, lay)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.rev != 42 || !slices.Equal(got.Owners, t2.Owners) || !slices.Equal(got.since, t2.since) ||
		!slices.Equal(got.prev, t2.prev) || got.members["a"] != members["a"] {
		t.Fatalf("decoded %+v, want %+v", got, t2)
	}
	r := got.routing
	if r.Version != 2 || r.Groups != 10 || r.SectionSize != 10 || r.GroupSize != 2 || len(r.Routes) != len(route.Compact(t2.Owners, nil)) {
		t.Fatalf("routing %+v", r)
	}
	for uid := uint64(0); uid < 200; uid++ {
		name, addr, ok := ownerOf(r, uid)
		if g, _ := r.Group(uid); !ok || name != t2.Owners[g] || addr != members[name].Address || g != int(uid/20) {
			t.Fatalf("uid %d: owner %s %s %v, group %d", uid, name, addr, ok, g)
		}
	}
	if _, _, ok := ownerOf(r, 200); ok {
		t.Fatal("uid 200 routed beyond the table")
	}
	if _, _, ok := ownerOf(route.Table{}, 5); ok {
		t.Fatal("the zero Routing routed a uid")
	}
}

// TestTableDecodeRefuses: a value that does not cover the layout's groups
// exactly once, or that is not JSON, is ErrCorrupt.
func TestTableDecodeRefuses(t *testing.T) {
	lay := testLayout()
	for _, v := range []string{
		`{`,
		`{"version":1,"groups":9,"ranges":[{"first":0,"last":8,"owner":"a","since":1}]}`,
		`{"version":1,"groups":10,"ranges":[{"first":0,"last":8,"owner":"a","since":1}]}`,
		`{"version":1,"groups":10,"ranges":[{"first":0,"last":4,"owner":"a","since":1},{"first":4,"last":9,"owner":"b","since":1}]}`,
		`{"version":1,"groups":10,"ranges":[{"first":0,"last":10,"owner":"a","since":1}]}`,
		`{"version":1,"groups":10,"ranges":[{"first":0,"last":9,"owner":"a","since":2}]}`,
		`{"version":2,"groups":10,"ranges":[{"first":0,"last":9,"owner":"a","since":1}],"members":{}}`,
		`{"version":2,"groups":10,"ranges":[{"first":0,"last":9,"owner":"a","since":1,"prev":{"node":"b","since":2}}],"members":{"a":{}}}`,
	} {
		if _, err := decodeTable([]byte(v), 1, lay); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", v, err)
		}
	}
}

// TestConfigDefaults: a Config's zero fields fail over in a few seconds,
// with an activation delay the margin longer than a confirmation's right;
// a margin too small for the delay, a right that would not outlast a
// confirm interval, or a bad weight or address, is refused.
func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Lease.TTL != DefaultTTL || c.Lease.Margin != DefaultTTL/4 || c.Margin != DefaultMargin || c.Lease.RequestTimeout != DefaultRequestTimeout ||
		c.ActivationDelay != DefaultActivationDelay || c.ConfirmInterval != DefaultActivationDelay/4 || c.Weight != 1 ||
		c.RebalanceInterval != DefaultRebalanceInterval || c.MaxMoves != DefaultMaxMoves || c.RequestTimeout != DefaultRequestTimeout ||
		c.claimLength() != DefaultActivationDelay-DefaultMargin {
		t.Fatalf("defaults: %+v", c)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Config{
		{ActivationDelay: 300 * time.Millisecond}, // right 100ms < interval 75ms + timeout 300ms
		{ActivationDelay: 2 * time.Second},        // margin 200ms < a sixth of 2s
		{ConfirmInterval: 700 * time.Millisecond}, // right 800ms < 700 + 300
		{Weight: -1}, {Weight: math.NaN()}, {Address: "a b:1"}, {Datacenter: "a/b"},
		{RebalanceInterval: -time.Second}, {Tolerance: -1}, {EvidenceRounds: -1},
		{HomeOnly: true, Datacenter: "tokyo"},                               // no homes
		{Homes: Homes{{First: 0, Last: 5, Datacenters: []string{"tokyo"}}}}, // does not cover 336 groups
	} {
		if err := bad.Validate(); !errors.Is(err, ErrConfig) {
			t.Fatalf("%+v: %v, want ErrConfig", bad, err)
		}
	}
	if err := (Config{ConfirmInterval: 700 * time.Millisecond}).Validate(); err == nil || !strings.Contains(err.Error(), "does not outlast") {
		t.Fatalf("short right: %v", err)
	}
}

// ownerOf returns the node r gives uid to and its address.
func ownerOf(r route.Table, uid uint64) (name, address string, ok bool) {
	o, ok := r.Lookup(uid)
	return o.Node, o.Address, ok
}
