// Package route is the sequence routing table as nodes and clients share
// it: which node serves each group of uids, and where to reach it. It is
// the one place that maps a uid to its owner; the sequence node
// (package seqfacade) builds tables, the server puts them on the wire and
// the Go client routes by them. It imports nothing but the standard
// library, so a client links no etcd.
package route

import (
	"fmt"
	"sort"
)

// Table maps every group of sections to the node that serves it. A uid's
// group is uid / SectionSize / GroupSize. Routes cover groups
// 0..Groups-1 in order, consecutive groups of one node forming one
// route. A Table is a value: share it read-only.
type Table struct {
	// Version grows with each table written; 0 means no table.
	Version     uint64
	SectionSize uint64
	GroupSize   int
	Groups      int
	Routes      []Route
}

// Route gives groups First..Last (inclusive) to one node.
type Route struct {
	First, Last int
	// Node names the node ("" for groups no live node serves); Address is
	// where clients reach it (host:port, "" if it published none).
	Node, Address string
}

// Group returns uid's group, and false when t has no layout or the uid is
// beyond its groups.
func (t Table) Group(uid uint64) (int, bool) {
	if t.SectionSize == 0 || t.GroupSize <= 0 {
		return 0, false
	}
	g := uid / t.SectionSize / uint64(t.GroupSize)
	if g >= uint64(t.Groups) {
		return 0, false
	}
	return int(g), true
}

// Lookup returns the route that holds uid's group. ok is false when t is
// no table (Version 0), the uid is beyond it, or no route names a node
// for it.
func (t Table) Lookup(uid uint64) (r Route, ok bool) {
	g, ok := t.Group(uid)
	if !ok || t.Version == 0 {
		return Route{}, false
	}
	i := sort.Search(len(t.Routes), func(i int) bool { return t.Routes[i].Last >= g })
	if i == len(t.Routes) || t.Routes[i].First > g || t.Routes[i].Node == "" {
		return Route{}, false
	}
	return t.Routes[i], true
}

// Compact returns the routes of owners (owners[g] is group g's node),
// consecutive groups of one node forming one route, with each node's
// address from addrs.
func Compact(owners []string, addrs map[string]string) []Route {
	var rs []Route
	for g, o := range owners {
		if n := len(rs); n > 0 && rs[n-1].Node == o && rs[n-1].Last == g-1 {
			rs[n-1].Last = g
			continue
		}
		rs = append(rs, Route{First: g, Last: g, Node: o, Address: addrs[o]})
	}
	return rs
}

// Check reports whether t's routes cover groups 0..Groups-1 exactly once,
// in order: what a client must check of a table it did not build.
func (t Table) Check() error {
	if t.Version == 0 {
		return nil
	}
	if t.SectionSize == 0 || t.GroupSize <= 0 || t.Groups <= 0 {
		return fmt.Errorf("route: table version %d has no layout (section size %d, group size %d, %d groups)",
			t.Version, t.SectionSize, t.GroupSize, t.Groups)
	}
	next := 0
	for _, r := range t.Routes {
		if r.First != next || r.Last < r.First || r.Last >= t.Groups {
			return fmt.Errorf("route: table version %d: route %d-%d does not continue at group %d of %d", t.Version, r.First, r.Last, next, t.Groups)
		}
		next = r.Last + 1
	}
	if next != t.Groups {
		return fmt.Errorf("route: table version %d covers %d of %d groups", t.Version, next, t.Groups)
	}
	return nil
}
