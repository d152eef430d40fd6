package seqfacade_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/quick"

	"github.com/migsvc/mig/seqfacade"
)

func members(names ...string) []seqfacade.Member {
	var ms []seqfacade.Member
	for _, n := range names {
		ms = append(ms, seqfacade.Member{Name: n})
	}
	return ms
}

func counts(t seqfacade.RoutingTable) map[string]int {
	c := map[string]int{}
	for _, o := range t.Owners {
		c[o]++
	}
	return c
}

func TestPlanFirstTableIsEven(t *testing.T) {
	next, moved := seqfacade.Plan(seqfacade.RoutingTable{}, 336, members("a", "b", "c"), seqfacade.PlanConfig{})
	if next.Version != 1 || moved != 336 {
		t.Fatalf("version %d, moved %d", next.Version, moved)
	}
	for m, n := range counts(next) {
		if n != 112 {
			t.Fatalf("member %s has %d groups, want 112", m, n)
		}
	}
}

func TestPlanFailoverSpreadsOverEveryLiveMember(t *testing.T) {
	t1, _ := seqfacade.Plan(seqfacade.RoutingTable{}, 300, members("a", "b", "c"), seqfacade.PlanConfig{})
	t2, moved := seqfacade.Plan(t1, 300, members("a", "c"), seqfacade.PlanConfig{})
	if moved != 100 || t2.Version != 2 {
		t.Fatalf("moved %d (want b's 100), version %d", moved, t2.Version)
	}
	c := counts(t2)
	if c["b"] != 0 || c["a"] != 150 || c["c"] != 150 {
		t.Fatalf("after b died: %v", c)
	}
	for g := range t1.Owners {
		if t1.Owners[g] != "b" && t2.Owners[g] != t1.Owners[g] {
			t.Fatalf("group %d moved from live %s to %s", g, t1.Owners[g], t2.Owners[g])
		}
	}
	// Nothing changes while nothing changes.
	t3, moved := seqfacade.Plan(t2, 300, members("a", "c"), seqfacade.PlanConfig{MaxMoves: 10})
	if moved != 0 || t3.Version != t2.Version {
		t.Fatalf("stable membership moved %d groups, version %d", moved, t3.Version)
	}
}

func TestPlanNoLiveMemberKeepsTheTable(t *testing.T) {
	t1, _ := seqfacade.Plan(seqfacade.RoutingTable{}, 10, members("a"), seqfacade.PlanConfig{})
	t2, moved := seqfacade.Plan(t1, 10, nil, seqfacade.PlanConfig{MaxMoves: 5})
	if moved != 0 || t2.Version != t1.Version || !slices.Equal(t1.Owners, t2.Owners) {
		t.Fatal("a table with no live member changed")
	}
}

func TestPlanJoinRebalancesGently(t *testing.T) {
	tb, _ := seqfacade.Plan(seqfacade.RoutingTable{}, 300, members("a", "b"), seqfacade.PlanConfig{})
	cfg := seqfacade.PlanConfig{MaxMoves: 8}
	rounds := 0
	for {
		next, moved := seqfacade.Plan(tb, 300, members("a", "b", "c"), cfg)
		if moved > cfg.MaxMoves {
			t.Fatalf("round %d moved %d groups, bound %d", rounds, moved, cfg.MaxMoves)
		}
		if moved == 0 {
			break
		}
		if next.Version != tb.Version+1 {
			t.Fatalf("version %d after %d", next.Version, tb.Version)
		}
		tb = next
		rounds++
	}
	if c := counts(tb); c["a"] != 100 || c["b"] != 100 || c["c"] != 100 {
		t.Fatalf("after the join settled: %v", c)
	}
	if rounds != 13 { // 100 groups to move, 8 a round
		t.Fatalf("%d rounds, want 13", rounds)
	}
}

func TestPlanWeights(t *testing.T) {
	ms := []seqfacade.Member{{Name: "big", Weight: 3}, {Name: "small", Weight: 1}}
	tb, _ := seqfacade.Plan(seqfacade.RoutingTable{}, 400, ms, seqfacade.PlanConfig{})
	if c := counts(tb); c["big"] != 300 || c["small"] != 100 {
		t.Fatalf("weights 3:1 gave %v", c)
	}
}

// TestPlanProperties checks random membership histories: every group has
// a live owner whenever anyone is alive, live owners lose groups only to
// bounded rebalancing, and the version grows exactly when the table
// changes.
func TestPlanProperties(t *testing.T) {
	f := func(seed uint64, groups uint16) bool {
		r := rand.New(rand.NewPCG(seed, 1))
		n := int(groups%500) + 1
		pool := []string{"a", "b", "c", "d", "e", "f"}
		var tb seqfacade.RoutingTable
		for round := range 30 {
			var live []seqfacade.Member
			for _, name := range pool {
				if r.IntN(3) > 0 {
					live = append(live, seqfacade.Member{Name: name, Weight: float64(r.IntN(3))})
				}
			}
			cfg := seqfacade.PlanConfig{MaxMoves: r.IntN(5)}
			next, moved := seqfacade.Plan(tb, n, live, cfg)
			if err := checkPlan(tb, next, n, live, cfg, moved); err != nil {
				t.Logf("seed %d round %d: %v", seed, round, err)
				return false
			}
			tb = next
		}
		return true
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func checkPlan(prev, next seqfacade.RoutingTable, n int, live []seqfacade.Member, cfg seqfacade.PlanConfig, moved int) error {
	alive := map[string]bool{}
	for _, m := range live {
		alive[m.Name] = true
	}
	changed, rebalanced := 0, 0
	for g := range n {
		was := ""
		if g < len(prev.Owners) {
			was = prev.Owners[g]
		}
		now := next.Owners[g]
		if len(live) > 0 && !alive[now] {
			return fmt.Errorf("group %d owned by %q, not alive", g, now)
		}
		if was != now {
			changed++
			if alive[was] {
				rebalanced++
			}
		}
	}
	switch {
	case changed != moved:
		return fmt.Errorf("moved %d, changed %d", moved, changed)
	case rebalanced > cfg.MaxMoves:
		return fmt.Errorf("%d rebalancing moves, bound %d", rebalanced, cfg.MaxMoves)
	case changed > 0 && next.Version != prev.Version+1, changed == 0 && next.Version != prev.Version:
		return fmt.Errorf("version %d after %d with %d changes", next.Version, prev.Version, changed)
	}
	back, err := seqfacade.TableFromRanges(next.Version, n, next.Ranges())
	if err != nil || !slices.Equal(back.Owners, next.Owners) {
		return fmt.Errorf("ranges do not round-trip: %v", err)
	}
	return nil
}

func TestTableFromRangesRejectsGapsAndOverlaps(t *testing.T) {
	for _, rs := range [][]seqfacade.RouteRange{
		{{First: 0, Last: 3, Owner: "a"}, {First: 5, Last: 9, Owner: "b"}},
		{{First: 0, Last: 5, Owner: "a"}, {First: 5, Last: 9, Owner: "b"}},
		{{First: 0, Last: 8, Owner: "a"}},
		{{First: 0, Last: 10, Owner: "a"}},
	} {
		if _, err := seqfacade.TableFromRanges(1, 10, rs); err == nil {
			t.Errorf("ranges %v accepted", rs)
		}
	}
}
