package seqfacade

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/migsvc/mig/seqfacade/route"
)

// table is a routing table as nodes keep it: each group's owner and
// tenure, the owners' registrations, and the etcd revision it was read
// at. Immutable once built; safe for concurrent use.
//
// A tenure is one owner incarnation's time with a group: it starts with
// the table version that gave the group to it (since) and records the
// tenure before it (from, fromReg, fromSince), so that the previous
// owner's release of exactly that tenure lets the new owner serve at once
// (docs/seq-failover.md, handoff), and whether the arbiter found that
// tenure's right to serve over (over: its owner stopped confirming at
// least an activation delay before the table, see quiet.go), so that
// the new owner serves at once after a crash too.
type table struct {
	Version uint64
	Owners  []string // by group; "" while no live node serves it
	since   []uint64
	prev    []tenure // the tenure before the current one; zero: none known
	over    []bool   // prev's right to serve is known over (quiet.go)
	members map[string]member
	rev     int64 // ModRevision of the routing key; 0 for a table not from etcd
	routing route.Table
}

// tenure names one owner incarnation's time with a group.
type tenure struct {
	Node  string `json:"node,omitempty"`
	Reg   int64  `json:"reg,omitempty"`   // the registration's CreateRevision
	Since uint64 `json:"since,omitempty"` // the table version that began it
}

// member is a node as a routing table records it.
type member struct {
	Address    string `json:"address,omitempty"`
	Datacenter string `json:"datacenter,omitempty"`
	// Reg is the CreateRevision of the registration the node's groups
	// were given to: a node that registers again is a new incarnation,
	// which gets its groups afresh (new tenures).
	Reg int64 `json:"reg,omitempty"`
}

// tableRecord is the routing key's JSON value.
type tableRecord struct {
	Version uint64            `json:"version"`
	Groups  int               `json:"groups"`
	Ranges  []rangeRecord     `json:"ranges"`
	Members map[string]member `json:"members"`
}

// rangeRecord is a run of groups with one owner and one tenure history.
type rangeRecord struct {
	First int    `json:"first"`
	Last  int    `json:"last"`
	Owner string `json:"owner"`
	Since uint64 `json:"since"`
	Prev  tenure `json:"prev,omitzero"`
	// Over: the arbiter found Prev's right to serve over (quiet.go).
	Over bool `json:"prev_over,omitempty"`
}

// newTable builds a table of lay's groups.
// over may be nil: no previous tenure known over.
func newTable(version uint64, owners []string, since []uint64, prev []tenure, over []bool, members map[string]member, rev int64, lay layout) *table {
	if over == nil {
		over = make([]bool, len(owners))
	}
	t := &table{Version: version, Owners: owners, since: since, prev: prev, over: over, members: members, rev: rev}
	addrs := make(map[string]string, len(members))
	for name, m := range members {
		addrs[name] = m.Address
	}
	t.routing = route.Table{
		Version:     version,
		SectionSize: lay.sectionSize,
		GroupSize:   lay.groupSize,
		Groups:      len(owners),
		Routes:      route.Compact(owners, addrs),
	}
	return t
}

// tenureOf returns group g's current tenure.
func (t *table) tenureOf(g int) tenure {
	o := t.Owners[g]
	if o == "" {
		return tenure{}
	}
	return tenure{Node: o, Reg: t.members[o].Reg, Since: t.since[g]}
}

// encode returns the routing key's value for t.
func (t *table) encode() []byte {
	rec := tableRecord{Version: t.Version, Groups: len(t.Owners), Members: t.members}
	for g, o := range t.Owners {
		if n := len(rec.Ranges); n > 0 {
			r := &rec.Ranges[n-1]
			if r.Owner == o && r.Since == t.since[g] && r.Prev == t.prev[g] && r.Over == t.over[g] && r.Last == g-1 {
				r.Last = g
				continue
			}
		}
		rec.Ranges = append(rec.Ranges, rangeRecord{First: g, Last: g, Owner: o, Since: t.since[g], Prev: t.prev[g], Over: t.over[g]})
	}
	b, _ := json.Marshal(rec) // cannot fail: strings, numbers and a map of them
	return b
}

// decodeTable reads the routing key's value, written at revision rev.
// It returns an error wrapping ErrCorrupt when the value is unreadable or
// does not cover lay's groups exactly once.
func decodeTable(val []byte, rev int64, lay layout) (*table, error) {
	var rec tableRecord
	if err := json.Unmarshal(val, &rec); err != nil {
		return nil, fmt.Errorf("%w: routing table: %v", ErrCorrupt, err)
	}
	if rec.Groups != lay.groups {
		return nil, fmt.Errorf("%w: routing table version %d has %d groups, this layout %d", ErrCorrupt, rec.Version, rec.Groups, lay.groups)
	}
	owners := make([]string, lay.groups)
	since := make([]uint64, lay.groups)
	prev := make([]tenure, lay.groups)
	over := make([]bool, lay.groups)
	next := 0
	for _, r := range rec.Ranges {
		if r.First != next || r.Last < r.First || r.Last >= lay.groups || r.Since > rec.Version || r.Prev.Since > r.Since {
			return nil, fmt.Errorf("%w: routing table version %d: range %d-%d (since %d) does not continue at group %d", ErrCorrupt, rec.Version, r.First, r.Last, r.Since, next)
		}
		if _, ok := rec.Members[r.Owner]; r.Owner != "" && !ok {
			return nil, fmt.Errorf("%w: routing table version %d: groups %d-%d belong to %s, which it does not list", ErrCorrupt, rec.Version, r.First, r.Last, r.Owner)
		}
		for g := r.First; g <= r.Last; g++ {
			// Over means something only of a tenure that has a predecessor.
			owners[g], since[g], prev[g], over[g] = r.Owner, r.Since, r.Prev, r.Over && r.Prev.Node != "" && r.Owner != ""
		}
		next = r.Last + 1
	}
	if next != lay.groups {
		return nil, fmt.Errorf("%w: routing table version %d covers %d of %d groups", ErrCorrupt, rec.Version, next, lay.groups)
	}
	if rec.Members == nil {
		rec.Members = map[string]member{}
	}
	return newTable(rec.Version, owners, since, prev, over, rec.Members, rev, lay), nil
}

// nextTable is the table that follows prev when group g goes to
// owners[g] and the members are members (each owner listed, with the
// registration its groups go to). A group whose owner incarnation (name
// and registration) stays keeps its tenure; one that changes gets a new
// tenure from the new version, recording the one it ends. over, if not
// nil, says whether the arbiter vouches that tenure p, the one before a
// group's tenure that began with version since, has no right to serve
// left (quiet.go): it is asked of every new tenure and of every kept one
// not vouched for yet. It reports false when nothing would change.
//
// The version is the larger of prev's plus one and first, the etcd
// revision the arbiter read at. Every table's version is therefore at
// most its own ModRevision (each is written after the read that planned
// it), and above every version written before, even across a deleted
// key or an old value written back by hand: a tenure's since is never
// reused. Versions grow, not always by one.
func nextTable(prev *table, owners []string, members map[string]member, lay layout, first uint64, over func(since uint64, p tenure) bool) (*table, bool) {
	version := max(first, 1)
	if prev != nil {
		// Never below the read revision either: an old table's value
		// written back by hand must not make versions, and so tenures,
		// repeat (versions stay at most their own revision).
		version = max(prev.Version+1, first)
	}
	since := make([]uint64, len(owners))
	tenures := make([]tenure, len(owners))
	vouched := make([]bool, len(owners))
	vouch := func(g int) bool { return over != nil && tenures[g].Node != "" && over(since[g], tenures[g]) }
	changed := prev == nil || !maps.Equal(members, prev.members)
	for g, o := range owners {
		var was tenure
		if prev != nil {
			was = prev.tenureOf(g)
			tenures[g] = prev.prev[g]
			vouched[g] = prev.over[g]
		}
		now := tenure{Node: o, Reg: members[o].Reg}
		if o != "" && was.Node == now.Node && was.Reg == now.Reg {
			since[g] = was.Since
			if !vouched[g] && vouch(g) {
				vouched[g], changed = true, true
			}
			continue
		}
		if o == "" && was.Node == "" {
			continue
		}
		changed = true
		if o != "" {
			since[g] = version
			tenures[g] = was
			vouched[g] = vouch(g)
		} else {
			tenures[g], vouched[g] = tenure{}, false
		}
	}
	if !changed {
		return prev, false
	}
	return newTable(version, owners, since, tenures, vouched, members, 0, lay), true
}
