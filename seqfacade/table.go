package seqfacade

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/migsvc/mig/seqfacade/route"
)

// table is a routing table as nodes keep it: the planner's RoutingTable,
// the version at which each group's owner got it, the members'
// addresses, and the etcd revision it was read at. Immutable once built;
// safe for concurrent use.
type table struct {
	RoutingTable
	// since[g] is the Version of the table that gave group g to its
	// current owner. A node keeps serving a group across tables only
	// while since is unchanged: a group that moved away and back between
	// two tables it read has a new since, and must be activated afresh.
	since   []uint64
	members map[string]member
	rev     int64 // ModRevision of the routing key; 0 for a table not from etcd
	routing route.Table
}

// member is a node as a routing table records it.
type member struct {
	Address    string `json:"address,omitempty"`
	Datacenter string `json:"datacenter,omitempty"`
}

// tableRecord is the routing key's JSON value.
type tableRecord struct {
	Version uint64            `json:"version"`
	Groups  int               `json:"groups"`
	Ranges  []rangeRecord     `json:"ranges"`
	Members map[string]member `json:"members"`
}

// rangeRecord is a run of groups with one owner and one since.
type rangeRecord struct {
	First int    `json:"first"`
	Last  int    `json:"last"`
	Owner string `json:"owner"`
	Since uint64 `json:"since"`
}

// newTable builds a table of lay's groups.
func newTable(rt RoutingTable, since []uint64, members map[string]member, rev int64, lay layout) *table {
	t := &table{RoutingTable: rt, since: since, members: members, rev: rev}
	addrs := make(map[string]string, len(members))
	for name, m := range members {
		addrs[name] = m.Address
	}
	t.routing = route.Table{
		Version:     rt.Version,
		SectionSize: lay.sectionSize,
		GroupSize:   lay.groupSize,
		Groups:      len(rt.Owners),
		Routes:      route.Compact(rt.Owners, addrs),
	}
	return t
}

// encode returns the routing key's value for t.
func (t *table) encode() []byte {
	rec := tableRecord{Version: t.Version, Groups: len(t.Owners), Members: t.members}
	for g, o := range t.Owners {
		if n := len(rec.Ranges); n > 0 && rec.Ranges[n-1].Owner == o && rec.Ranges[n-1].Since == t.since[g] && rec.Ranges[n-1].Last == g-1 {
			rec.Ranges[n-1].Last = g
			continue
		}
		rec.Ranges = append(rec.Ranges, rangeRecord{First: g, Last: g, Owner: o, Since: t.since[g]})
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
	next := 0
	for _, r := range rec.Ranges {
		if r.First != next || r.Last < r.First || r.Last >= lay.groups || r.Since > rec.Version {
			return nil, fmt.Errorf("%w: routing table version %d: range %d-%d (since %d) does not continue at group %d", ErrCorrupt, rec.Version, r.First, r.Last, r.Since, next)
		}
		for g := r.First; g <= r.Last; g++ {
			owners[g], since[g] = r.Owner, r.Since
		}
		next = r.Last + 1
	}
	if next != lay.groups {
		return nil, fmt.Errorf("%w: routing table version %d covers %d of %d groups", ErrCorrupt, rec.Version, next, lay.groups)
	}
	if rec.Members == nil {
		rec.Members = map[string]member{}
	}
	return newTable(RoutingTable{Version: rec.Version, Owners: owners}, since, rec.Members, rev, lay), nil
}

// nextTable is the table that follows prev when the planner gives next's
// owners and the members are members: a group keeps its since while its
// owner stays, and gets the new version when it moves. It reports false
// when nothing would change.
//
// With no prev (none written yet, or the key was deleted), the version
// starts at first: the etcd revision the arbiter read at. Every table's
// version is at most its own ModRevision (each one is written after the
// read that planned it, and versions grow by one a write), so versions
// keep growing even across a deleted key, and clients that keep the
// highest version they saw are never stuck on an old table.
func nextTable(prev *table, owners []string, members map[string]member, lay layout, first uint64) (*table, bool) {
	var (
		version   = max(first, 1)
		prevOwner = make([]string, len(owners))
		prevSince = make([]uint64, len(owners))
		prevMems  map[string]member
	)
	if prev != nil {
		version = prev.Version + 1
		copy(prevOwner, prev.Owners)
		copy(prevSince, prev.since)
		prevMems = prev.members
	}
	since := make([]uint64, len(owners))
	changed := prev == nil || !maps.Equal(members, prevMems)
	for g, o := range owners {
		since[g] = prevSince[g]
		if o != prevOwner[g] {
			since[g] = version
			changed = true
		}
	}
	if !changed {
		return prev, false
	}
	return newTable(RoutingTable{Version: version, Owners: slices.Clone(owners)}, since, members, 0, lay), true
}
