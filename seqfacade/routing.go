package seqfacade

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// RoutingTable assigns every group of sections to one member (a node that
// registered itself in etcd). The arbiter writes it; every node reads it;
// answers to clients carry it. Version only grows. A RoutingTable is a
// value; share it read-only.
type RoutingTable struct {
	Version uint64
	// Owners[g] is the name of the member that owns group g, or "" while
	// no live member does.
	Owners []string
}

// RouteRange is a run of consecutive groups with one owner: the compact
// form of a RoutingTable on the wire.
type RouteRange struct {
	First, Last int // groups, inclusive
	Owner       string
}

// Ranges returns t as runs of consecutive groups with one owner.
func (t RoutingTable) Ranges() []RouteRange {
	var rs []RouteRange
	for g, o := range t.Owners {
		if n := len(rs); n > 0 && rs[n-1].Owner == o && rs[n-1].Last == g-1 {
			rs[n-1].Last = g
			continue
		}
		rs = append(rs, RouteRange{First: g, Last: g, Owner: o})
	}
	return rs
}

// TableFromRanges rebuilds a table of groups groups from its ranges. It
// returns an error if the ranges do not cover 0..groups-1 exactly once.
func TableFromRanges(version uint64, groups int, rs []RouteRange) (RoutingTable, error) {
	t := RoutingTable{Version: version, Owners: make([]string, groups)}
	next := 0
	for _, r := range rs {
		if r.First != next || r.Last < r.First || r.Last >= groups {
			return RoutingTable{}, fmt.Errorf("seqfacade: routing range %d-%d does not continue at group %d of %d", r.First, r.Last, next, groups)
		}
		for g := r.First; g <= r.Last; g++ {
			t.Owners[g] = r.Owner
		}
		next = r.Last + 1
	}
	if next != groups {
		return RoutingTable{}, fmt.Errorf("seqfacade: routing ranges cover %d of %d groups", next, groups)
	}
	return t, nil
}

// Member is a registered node as the arbiter sees it.
type Member struct {
	Name string
	// Weight is the member's relative capacity (0 means 1). A member with
	// weight 2 is given about twice the groups of a member with weight 1.
	Weight float64
}

// PlanConfig bounds a planning round.
type PlanConfig struct {
	// MaxMoves bounds the groups moved between two live members in one
	// round (rebalancing after a join). Groups of members that are gone
	// are always reassigned, whatever the bound: that is failover.
	// 0 means no rebalancing moves.
	MaxMoves int
}

// Plan computes the next routing table from prev and the members that are
// alive now (those whose registration, bound to their lease, still
// exists). It never moves a group away from a live member except to
// rebalance, at most cfg.MaxMoves per round; it gives every group of a
// member that is gone, and every unowned group, to the live members with
// the fewest groups for their weight. With no live member, groups stay
// where they are: nobody can serve them, and a member that comes back may
// have them again. The version grows by one if anything changed.
//
// HAZARD: Plan must only be fed members whose leases are gone as absent.
// Moving a group away from a member that is alive but slow is safe only
// because of the activation delay (see the package doc); Plan itself
// cannot tell.
func Plan(prev RoutingTable, groups int, live []Member, cfg PlanConfig) (next RoutingTable, moved int) {
	next = RoutingTable{Version: prev.Version, Owners: make([]string, groups)}
	copy(next.Owners, prev.Owners)
	if len(live) == 0 {
		return next, 0
	}
	weight := map[string]float64{}
	for _, m := range live {
		weight[m.Name] = cmp.Or(m.Weight, 1)
	}
	count := map[string]int{}
	var orphans []int
	for g, o := range next.Owners {
		if _, ok := weight[o]; ok {
			count[o]++
		} else {
			orphans = append(orphans, g)
		}
	}
	names := slices.Sorted(maps.Keys(weight))
	// load is a member's groups per unit of weight after taking one more.
	lightest := func() string {
		return slices.MinFunc(names, func(a, b string) int {
			return cmp.Or(cmp.Compare(float64(count[a]+1)/weight[a], float64(count[b]+1)/weight[b]), cmp.Compare(a, b))
		})
	}
	heaviest := func() string {
		return slices.MaxFunc(names, func(a, b string) int {
			return cmp.Or(cmp.Compare(float64(count[a])/weight[a], float64(count[b])/weight[b]), cmp.Compare(b, a))
		})
	}
	for _, g := range orphans {
		m := lightest()
		next.Owners[g] = m
		count[m]++
		moved++
	}
	for range cfg.MaxMoves {
		from, to := heaviest(), lightest()
		// Move only if it makes the spread strictly better.
		if from == to || float64(count[to]+1)/weight[to] >= float64(count[from])/weight[from] {
			break
		}
		// Take from's last group, so ranges stay long.
		g := len(next.Owners) - 1
		for next.Owners[g] != from {
			g--
		}
		next.Owners[g] = to
		count[from]--
		count[to]++
		moved++
	}
	if moved > 0 {
		next.Version = prev.Version + 1
	}
	return next, moved
}
