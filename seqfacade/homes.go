package seqfacade

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Homes gives every group of sections a home datacenter and an ordered
// list of fallbacks, after CockroachDB's lease preferences: a group lives
// on the nodes of the first datacenter of its list that has a live node,
// so at home while home has one, and goes back (a few groups a round)
// when home returns. A value; share it read-only.
//
// Written as "tokyo=0-167,osaka=168-335", each home followed, optionally,
// by its fallbacks: "tokyo=0-167>osaka>nagoya". A home without fallbacks
// falls back on the other datacenters named, in the order of their names
// starting after its own (tokyo: then the next name after tokyo, and so
// round), so that the groups of a lost datacenter spread over the others
// in a fixed order.
type Homes []Home

// Home is a run of groups, First..Last inclusive, with its datacenters:
// the home first, then the fallbacks in order.
type Home struct {
	First, Last int
	Datacenters []string
}

// ParseHomes parses the written form (see Homes). It checks the syntax
// and names; whether the runs cover the groups is Config.Validate's.
func ParseHomes(s string) (Homes, error) {
	var h Homes
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		dc, rest, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("home %q is not datacenter=FIRST-LAST (like tokyo=0-167)", item)
		}
		parts := strings.Split(rest, ">")
		first, last, err := parseGroupRange(parts[0])
		if err != nil {
			return nil, fmt.Errorf("home %q: %w", item, err)
		}
		dcs := []string{strings.TrimSpace(dc)}
		for _, f := range parts[1:] {
			dcs = append(dcs, strings.TrimSpace(f))
		}
		for i, d := range dcs {
			if err := checkName("datacenter", d); err != nil {
				return nil, fmt.Errorf("home %q: %w", item, err)
			}
			if slices.Contains(dcs[:i], d) {
				return nil, fmt.Errorf("home %q names datacenter %s twice", item, d)
			}
		}
		h = append(h, Home{First: first, Last: last, Datacenters: dcs})
	}
	if len(h) == 0 {
		return nil, nil
	}
	slices.SortFunc(h, func(a, b Home) int { return a.First - b.First })
	return h.withFallbacks(), nil
}

func parseGroupRange(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		b = a
	}
	f, err1 := strconv.Atoi(strings.TrimSpace(a))
	l, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || f < 0 || l < f {
		return 0, 0, fmt.Errorf("%q is not a range of groups FIRST-LAST with 0 <= FIRST <= LAST", s)
	}
	return f, l, nil
}

// EvenHomes spreads groups over dcs in equal consecutive runs (the first
// runs one longer when they do not divide), in the order of the names,
// each with the default fallbacks. Fewer than two datacenters: no homes.
func EvenHomes(groups int, dcs []string) Homes {
	dcs = slices.Clone(dcs)
	slices.Sort(dcs)
	dcs = slices.Compact(dcs)
	if len(dcs) < 2 || groups < len(dcs) {
		return nil
	}
	var h Homes
	first := 0
	for i, dc := range dcs {
		n := groups / len(dcs)
		if i < groups%len(dcs) {
			n++
		}
		h = append(h, Home{First: first, Last: first + n - 1, Datacenters: []string{dc}})
		first += n
	}
	return h.withFallbacks()
}

// withFallbacks completes every home without fallbacks with the default
// ones.
func (h Homes) withFallbacks() Homes {
	all := h.Datacenters()
	out := make(Homes, len(h))
	for i, hm := range h {
		out[i] = Home{First: hm.First, Last: hm.Last, Datacenters: slices.Clone(hm.Datacenters)}
		if len(hm.Datacenters) > 1 {
			continue
		}
		k := slices.Index(all, hm.Datacenters[0])
		for j := 1; j < len(all); j++ {
			out[i].Datacenters = append(out[i].Datacenters, all[(k+j)%len(all)])
		}
	}
	return out
}

// Datacenters returns every datacenter h names, sorted.
func (h Homes) Datacenters() []string {
	var all []string
	for _, hm := range h {
		all = append(all, hm.Datacenters...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// String returns the written form, fallbacks included.
func (h Homes) String() string {
	parts := make([]string, len(h))
	for i, hm := range h {
		parts[i] = fmt.Sprintf("%s=%d-%d", hm.Datacenters[0], hm.First, hm.Last)
		for _, f := range hm.Datacenters[1:] {
			parts[i] += ">" + f
		}
	}
	return strings.Join(parts, ",")
}

// check reports whether h covers groups 0..groups-1 exactly once (or is
// empty).
func (h Homes) check(groups int) error {
	if len(h) == 0 {
		return nil
	}
	next := 0
	for _, hm := range h {
		switch {
		case len(hm.Datacenters) == 0:
			return fmt.Errorf("homes: groups %d-%d have no datacenter", hm.First, hm.Last)
		case hm.First < next:
			return fmt.Errorf("homes: groups %d-%d overlap the groups before them (up to %d)", hm.First, hm.Last, next-1)
		case hm.First > next:
			return fmt.Errorf("homes: groups %d-%d have no home (there are %d groups: the homes must cover 0-%d)", next, hm.First-1, groups, groups-1)
		case hm.Last < hm.First:
			return fmt.Errorf("homes: range %d-%d is backwards", hm.First, hm.Last)
		}
		next = hm.Last + 1
	}
	if next != groups {
		if next > groups {
			return fmt.Errorf("homes: they run to group %d, but there are only %d groups (0-%d)", next-1, groups, groups-1)
		}
		return fmt.Errorf("homes: groups %d-%d have no home (there are %d groups: the homes must cover 0-%d)", next, groups-1, groups, groups-1)
	}
	return nil
}

// of returns group g's datacenters, home first; nil without homes.
func (h Homes) of(g int) []string {
	i, ok := slices.BinarySearchFunc(h, g, func(hm Home, g int) int {
		switch {
		case hm.Last < g:
			return -1
		case hm.First > g:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return h[i].Datacenters
}

// home returns group g's home datacenter ("" without homes).
func (h Homes) home(g int) string {
	if dcs := h.of(g); len(dcs) > 0 {
		return dcs[0]
	}
	return ""
}

// names reports whether some group has its home in dc.
func (h Homes) names(dc string) bool {
	for _, hm := range h {
		if hm.Datacenters[0] == dc {
			return true
		}
	}
	return false
}

// equal reports whether h and o are the same homes.
func (h Homes) equal(o Homes) bool {
	return slices.EqualFunc(h, o, func(a, b Home) bool {
		return a.First == b.First && a.Last == b.Last && slices.Equal(a.Datacenters, b.Datacenters)
	})
}
