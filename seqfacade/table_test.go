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
	members := map[string]member{"a": {Address: "a:1", Datacenter: "tokyo"}, "b": {Address: "b:1"}}
	t1, changed := nextTable(nil, []string{"a", "a", "a", "b", "b", "a", "a", "b", "b", "b"}, members, lay, 1)
	if !changed || t1.Version != 1 {
		t.Fatalf("first table: version %d, changed %v", t1.Version, changed)
	}
	// Group 2 moves to b: only its since changes.
	t2, changed := nextTable(t1, []string{"a", "a", "b", "b", "b", "a", "a", "b", "b", "b"}, members, lay, 1)
	if !changed || t2.Version != 2 || !slices.Equal(t2.since, []uint64{1, 1, 2, 1, 1, 1, 1, 1, 1, 1}) {
		t.Fatalf("second table: version %d, since %v", t2.Version, t2.since)
	}
	if _, changed := nextTable(t2, t2.Owners, members, lay, 1); changed {
		t.Fatal("an unchanged table was rewritten")
	}
	moved := map[string]member{"a": {Address: "a:2"}, "b": {Address: "b:1"}}
	if t3, changed := nextTable(t2, t2.Owners, moved, lay, 1); !changed || t3.Version != 3 || !slices.Equal(t3.since, t2.since) {
		t.Fatalf("a new address: changed %v, version %d, since %v", changed, t3.Version, t3.since)
	}

	// Written afresh after the key was deleted: above every version before.
	if t4, _ := nextTable(nil, t2.Owners, members, lay, 57); t4.Version != 57 || t4.since[0] != 57 {
		t.Fatalf("a table after a deleted key: version %d, since %v", t4.Version, t4.since)
	}

	got, err := decodeTable(t2.encode(), 42, lay)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.rev != 42 || !slices.Equal(got.Owners, t2.Owners) || !slices.Equal(got.since, t2.since) || got.members["a"] != members["a"] {
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
	} {
		if _, err := decodeTable([]byte(v), 1, lay); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", v, err)
		}
	}
}

// TestRoutedDefaults: a routed Config's zero fields fail over in a few
// seconds, with an activation delay above the TTL; a shorter delay, or a
// bad weight or address, is refused.
func TestRoutedDefaults(t *testing.T) {
	c := Config{Routed: true}.withDefaults()
	if c.Lease.TTL != DefaultRoutedTTL || c.Lease.Margin != DefaultRoutedMargin || c.Lease.RequestTimeout != DefaultRoutedRequestTimeout ||
		c.ActivationDelay != DefaultRoutedTTL+DefaultRoutedMargin || c.Weight != 1 ||
		c.RebalanceInterval != DefaultRebalanceInterval || c.MaxMoves != DefaultMaxMoves || c.RequestTimeout != DefaultRoutedRequestTimeout {
		t.Fatalf("routed defaults: %+v", c)
	}
	if err := (Config{Routed: true}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{Routed: true, ActivationDelay: 10 * time.Millisecond}).Validate(); err != nil {
		t.Log("the single-node test delay is refused when routed:", err)
	} else {
		t.Fatal("a routed delay shorter than the TTL was accepted")
	}
	for _, bad := range []Config{
		{Routed: true, ActivationDelay: 1999 * time.Millisecond},
		{Routed: true, Weight: -1},
		{Routed: true, Weight: math.NaN()},
		{Routed: true, Address: "a b:1"},
		{Routed: true, Datacenter: "a/b"},
		{Routed: true, RebalanceInterval: -time.Second},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrConfig) {
			t.Fatalf("%+v: %v, want ErrConfig", bad, err)
		}
	}
	if err := (Config{Routed: true, ActivationDelay: 1999 * time.Millisecond}).Validate(); err == nil || !strings.Contains(err.Error(), "activation delay") {
		t.Fatalf("short delay: %v", err)
	}
	// Without Routed the single-node defaults stand.
	if c := (Config{}).withDefaults(); c.Lease.TTL == DefaultRoutedTTL || c.MaxMoves != 0 {
		t.Fatalf("single-node defaults changed: %+v", c)
	}
}

// ownerOf returns the node r gives uid to and its address.
func ownerOf(r route.Table, uid uint64) (name, address string, ok bool) {
	o, ok := r.Lookup(uid)
	return o.Node, o.Address, ok
}
