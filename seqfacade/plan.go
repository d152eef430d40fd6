package seqfacade

import (
	"cmp"
	"maps"
	"slices"
)

// Member is a registered node as the arbiter plans with it. A plain
// value.
type Member struct {
	Name       string
	Datacenter string
	// Weight is the member's relative capacity (0 means 1).
	Weight float64
	// Draining members are alive but leaving: their groups move to others
	// at once, as planned moves (handed off, without a gap).
	Draining bool
}

// Why a group moves; the label of the moves metric.
const (
	MoveNew      = "new"      // no owner before (the first table, or no live node had it)
	MoveFailover = "failover" // its owner's registration is gone
	MoveDrain    = "drain"    // its owner is leaving
	MoveHome     = "home"     // towards the first datacenter of its list that has a live node
	MoveBalance  = "balance"  // to even the groups per unit of weight (an idle datacenter)
	MoveLoad     = "load"     // to even the calls per unit of weight
	MoveRestart  = "restart"  // the same node registered again: a new tenure
	MoveReset    = "reset"    // a new tenure for a table no arbiter wrote (see routed.readCluster)
)

// Move is one group given to another member by a plan.
type Move struct {
	Group    int
	From, To string
	Reason   string
}

// PlanInput is what one planning round knows.
type PlanInput struct {
	// Owners[g] is group g's owner in the current table ("" none). An
	// owner that is not a live member is gone: its groups move at once.
	Owners []string
	// Live are the registered members.
	Live []Member
	// Homes gives groups their datacenters (none: any member).
	Homes Homes
	// HomeOnly, when set, is the datacenter whose own store this is: only
	// groups homed there are planned, the others have no owner.
	HomeOnly string
	// Load is each group's calls a second (nil: unknown). Busy says, by
	// place (see Plan), where the load is high enough to balance it
	// rather than group counts; LoadDC where it is to be evened this
	// round (evidence gathered over rounds by the arbiter). A busy place
	// without evidence moves nothing for balance: counting groups would
	// undo what evening the load did.
	Load   []float64
	Busy   map[string]bool
	LoadDC map[string]bool
	// Cooling reports the groups that moved too recently to move again
	// for balance or load (nil: none).
	Cooling func(g int) bool
	// MaxMoves bounds the moves of live groups (home, balance, load) in
	// this round; gone and draining owners' groups always move. Negative
	// or zero: none.
	MaxMoves int
	// Tolerance is the load band (a fraction of the mean per unit of
	// weight) within which members count as even.
	Tolerance float64
}

// Plan computes the next owners of every group, and the moves that make
// them, from the current table and the live members.
//
//   - Each group's place is the first datacenter of its homes list with a
//     member that is not draining (any datacenter when none has, or
//     without homes).
//   - The groups of gone or draining members, and groups with no owner,
//     go at once to members of their place, in runs of consecutive
//     groups filling each member up to its share by weight, so a table
//     stays a handful of routes.
//   - Then, at most MaxMoves of the live groups move: first those outside
//     their place (a home datacenter that came back gets its groups back
//     a round at a time), then, within each datacenter, to even the load
//     per unit of weight where LoadDC says so (the hottest groups of the
//     busiest member to the least busy, never overshooting), or, where
//     the load is too low to matter (not Busy), the group counts per unit
//     of weight (only while strictly better).
//     Cooling groups do not move for balance or load.
//   - With no eligible member at all, groups stay where they are: nobody
//     can serve them, and their owner may come back.
//
// HAZARD: Plan must be fed as gone only members whose registration
// (bound to their lease) is gone. Moving a group away from a member that
// is alive but slow is safe only because of the activation delay and
// handoffs (docs/seq-failover.md); Plan itself cannot tell.
func Plan(in PlanInput) (owners []string, moves []Move) {
	p := newPlanner(in)
	p.placeOrphans()
	budget := in.MaxMoves
	budget = p.goHome(budget)
	for _, pool := range p.pools() {
		switch {
		case in.LoadDC[pool]:
			budget = p.evenLoad(pool, budget)
		case !in.Busy[pool]:
			budget = p.evenCount(pool, budget)
		}
	}
	return p.owners, p.moves
}

type planner struct {
	in      PlanInput
	owners  []string
	members map[string]Member
	byDC    map[string][]string // eligible members by datacenter, sorted
	count   map[string]int      // groups per member
	load    map[string]float64  // calls a second per member
	place   []string            // each group's datacenter, "" for any
	moves   []Move
	moved   map[int]bool // groups moved in this round: none moves twice
}

func newPlanner(in PlanInput) *planner {
	p := &planner{
		in:      in,
		owners:  slices.Clone(in.Owners),
		members: map[string]Member{},
		byDC:    map[string][]string{},
		count:   map[string]int{},
		load:    map[string]float64{},
		place:   make([]string, len(in.Owners)),
		moved:   map[int]bool{},
	}
	for _, m := range in.Live {
		m.Weight = cmp.Or(m.Weight, 1)
		p.members[m.Name] = m
		if !m.Draining {
			p.byDC[m.Datacenter] = append(p.byDC[m.Datacenter], m.Name)
		}
	}
	for dc := range p.byDC {
		slices.Sort(p.byDC[dc])
	}
	for g := range p.owners {
		p.place[g] = p.placeOf(g)
		if o := p.owners[g]; p.eligible(o) {
			p.count[o]++
			p.load[o] += p.groupLoad(g)
		}
	}
	return p
}

func (p *planner) groupLoad(g int) float64 {
	if g < len(p.in.Load) {
		return p.in.Load[g]
	}
	return 0
}

func (p *planner) eligible(name string) bool {
	m, ok := p.members[name]
	return ok && !m.Draining
}

// planned reports whether group g is planned at all (HomeOnly).
func (p *planner) planned(g int) bool {
	return p.in.HomeOnly == "" || p.in.Homes.home(g) == p.in.HomeOnly
}

// placeOf returns the datacenter group g should live in: the first of its
// list with an eligible member; "" for any (no homes, or none of its list
// has one).
func (p *planner) placeOf(g int) string {
	for _, dc := range p.in.Homes.of(g) {
		if len(p.byDC[dc]) > 0 {
			return dc
		}
	}
	return ""
}

// candidates returns the eligible members group g may go to.
func (p *planner) candidates(g int) []string { return p.pool(p.place[g]) }

// pool returns the eligible members of a place: a datacenter's, or, for
// "" (anywhere), all of them.
func (p *planner) pool(place string) []string {
	if place != "" {
		return p.byDC[place]
	}
	var all []string
	for _, dc := range slices.Sorted(maps.Keys(p.byDC)) {
		all = append(all, p.byDC[dc]...)
	}
	return all
}

// pools returns the places groups are balanced within: each datacenter
// that is some group's place, and "" when some group may go anywhere.
func (p *planner) pools() []string {
	seen := map[string]bool{}
	for g, pl := range p.place {
		if p.planned(g) {
			seen[pl] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// shares returns each candidate's deficit against its share by weight of
// the groups placed where they may go.
func (p *planner) deficits(cands []string, g int) map[string]float64 {
	total, weight := 0, 0.0
	for h := range p.owners {
		if p.planned(h) && p.place[h] == p.place[g] {
			total++
		}
	}
	for _, c := range cands {
		weight += p.members[c].Weight
	}
	d := make(map[string]float64, len(cands))
	for _, c := range cands {
		d[c] = float64(total)*p.members[c].Weight/weight - float64(p.count[c])
	}
	return d
}

func (p *planner) move(g int, to, reason string) {
	from := p.owners[g]
	if p.eligible(from) {
		p.count[from]--
		p.load[from] -= p.groupLoad(g)
	}
	p.owners[g] = to
	p.count[to]++
	p.load[to] += p.groupLoad(g)
	p.moves = append(p.moves, Move{Group: g, From: from, To: to, Reason: reason})
	p.moved[g] = true
}

// receiver returns the member group g goes to: last, the member the
// group before it went to, while it is still below its share (so that
// consecutive groups form one route), else the candidate furthest below
// its share.
func (p *planner) receiver(g int, last string) string {
	cands := p.candidates(g)
	def := p.deficits(cands, g)
	if slices.Contains(cands, last) && def[last] >= 0.5 {
		return last
	}
	return slices.MaxFunc(cands, func(a, b string) int { return cmp.Or(cmp.Compare(def[a], def[b]), cmp.Compare(b, a)) })
}

// placeOrphans gives every group without an eligible owner to a member of
// its place, in runs: the member that took the group before keeps taking
// while it is below its share.
func (p *planner) placeOrphans() {
	if len(p.byDC) == 0 {
		return
	}
	last := ""
	for g, o := range p.owners {
		if !p.planned(g) {
			if o != "" {
				p.owners[g] = "" // not this store's: nobody here serves it
			}
			continue
		}
		if p.eligible(o) {
			last = ""
			continue
		}
		reason := MoveFailover
		switch m, ok := p.members[o]; {
		case o == "":
			reason = MoveNew
		case ok && m.Draining:
			reason = MoveDrain
		}
		to := p.receiver(g, last)
		p.move(g, to, reason)
		last = to
	}
}

// goHome moves, at most budget, groups whose owner is outside their
// place, consecutive groups to one member while it is below its share.
func (p *planner) goHome(budget int) int {
	last := ""
	for g, o := range p.owners {
		if budget <= 0 {
			break
		}
		dc := p.place[g]
		if !p.planned(g) || dc == "" || !p.eligible(o) || p.moved[g] || p.members[o].Datacenter == dc {
			continue
		}
		to := p.receiver(g, last)
		p.move(g, to, MoveHome)
		last = to
		budget--
	}
	return budget
}

// movable reports whether group g, owned by an eligible member and in its
// place, may move for balance or load.
func (p *planner) movable(g int) bool {
	o := p.owners[g]
	return p.planned(g) && p.eligible(o) && !p.moved[g] && (p.place[g] == "" || p.members[o].Datacenter == p.place[g]) &&
		(p.in.Cooling == nil || !p.in.Cooling(g))
}

// evenCount moves, at most budget, groups placed in pool from the
// member of the pool with the most groups per unit of weight to the one
// with the fewest, while that is strictly better. It takes the heavier
// member's last such group, so runs stay long.
func (p *planner) evenCount(pool string, budget int) int {
	names := p.pool(pool)
	per := func(m string, extra int) float64 { return float64(p.count[m]+extra) / p.members[m].Weight }
	for budget > 0 && len(names) > 1 {
		from := slices.MaxFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(per(a, 0), per(b, 0)), cmp.Compare(b, a)) })
		to := slices.MinFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(per(a, 1), per(b, 1)), cmp.Compare(a, b)) })
		if from == to || per(to, 1) >= per(from, 0) {
			break
		}
		g := -1
		for h := len(p.owners) - 1; h >= 0; h-- {
			if p.owners[h] == from && p.place[h] == pool && p.movable(h) {
				g = h
				break
			}
		}
		if g < 0 {
			break
		}
		p.move(g, to, MoveBalance)
		budget--
	}
	return budget
}

// evenLoad moves, at most budget, the hottest groups placed in pool from
// its busiest member (calls a second per unit of weight) to its least
// busy, while the busiest is outside the tolerance band and a move lowers
// it without making the receiver busier than the donor is left.
func (p *planner) evenLoad(pool string, budget int) int {
	names := p.pool(pool)
	per := func(m string) float64 { return p.load[m] / p.members[m].Weight }
	for budget > 0 && len(names) > 1 {
		total, weight := 0.0, 0.0
		for _, m := range names {
			total += p.load[m]
			weight += p.members[m].Weight
		}
		mean := total / weight
		from := slices.MaxFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(per(a), per(b)), cmp.Compare(b, a)) })
		to := slices.MinFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(per(a), per(b)), cmp.Compare(a, b)) })
		if from == to || per(from) <= mean*(1+p.in.Tolerance) {
			break
		}
		var groups []int
		for g, o := range p.owners {
			if o == from && p.place[g] == pool && p.movable(g) && p.groupLoad(g) > 0 {
				groups = append(groups, g)
			}
		}
		slices.SortStableFunc(groups, func(a, b int) int { return cmp.Compare(p.groupLoad(b), p.groupLoad(a)) })
		wf, wt := p.members[from].Weight, p.members[to].Weight
		g := -1
		for _, h := range groups {
			x := p.groupLoad(h)
			if (p.load[to]+x)/wt <= (p.load[from]-x)/wf {
				g = h
				break
			}
		}
		if g < 0 {
			break // every group would overshoot: the hot spot is one group
		}
		p.move(g, to, MoveLoad)
		budget--
	}
	return budget
}

// loadState reports, for each place groups are balanced within (see
// Plan), whether its members serve at least minLoad calls a second in
// all (busy: the load, not the group counts, is what to even), and
// whether their load per unit of weight is then outside the tolerance
// band (out: evidence for evening it).
func loadState(in PlanInput, minLoad float64) (busy, out map[string]bool) {
	p := newPlanner(in)
	busy, out = map[string]bool{}, map[string]bool{}
	for _, pool := range p.pools() {
		names := p.pool(pool)
		total, weight, top := 0.0, 0.0, 0.0
		for _, m := range names {
			total += p.load[m]
			weight += p.members[m].Weight
			top = max(top, p.load[m]/p.members[m].Weight)
		}
		busy[pool] = total >= minLoad
		out[pool] = busy[pool] && len(names) > 1 && top > total/weight*(1+in.Tolerance)
	}
	return busy, out
}
