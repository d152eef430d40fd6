package seqfacade

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migsvc/mig/clock"
)

// group is a loaded group: the unit persisted in one key, claimed, loaded
// and unloaded together. It is served under the claim it was loaded with
// and unloaded, for good, when that claim ends or a write's proof fails;
// a later call loads a fresh group from the store.
type group struct {
	n     *Node
	idx   int
	first int // first section
	claim Claim
	dl    *clock.Deadline // claim's deadline when it has one (deadlined), else nil
	gone  chan struct{}   // closed when unloaded
	dead  atomic.Bool     // set when unloaded
	// unload records the unload of this instance, once installed (set
	// under the node's mu before the group is published).
	unload *unloading

	mu struct {
		sync.Mutex
		deadErr  error
		sections []*section // allocated sections, by index in the group
		// floor is each section's max_seq when the group was loaded: every
		// cur_seq of a section starts there, above anything handed out
		// before. persisted is each max_seq known to be persisted now.
		floor, persisted []uint64
		rev              int64           // the store revision persisted was read or written at
		steps            []uint64        // each section's current step
		lastExt          []time.Duration // when each section was last extended (0: not since the load)
		reread           bool            // a write's outcome is unknown: read before writing
		attempted        []uint64        // the values of that write
		wantN            int             // sections with ext.wanted
		next             *round          // the round that will raise the wanted sections
		running          bool            // extendLoop is running
		failing          error           // the last round's error while retrying; nil once one succeeds
	}
}

func (n *Node) newGroup(idx int, c Claim, st GroupState) *group {
	g := &group{n: n, idx: idx, first: n.lay.firstSection(idx), claim: c, gone: make(chan struct{})}
	if d, ok := c.(deadlined); ok {
		g.dl = d.deadline()
	}
	k := len(st.MaxSeqs)
	g.mu.sections = make([]*section, k)
	g.mu.floor = slices.Clone(st.MaxSeqs)
	g.mu.persisted = st.MaxSeqs
	g.mu.rev = st.Revision
	g.mu.steps = make([]uint64, k)
	for i := range g.mu.steps {
		g.mu.steps[i] = n.cfg.Step
	}
	g.mu.lastExt = make([]time.Duration, k)
	g.mu.next = newRound()
	return g
}

// live reports whether the group's claim still holds, reading the clock:
// through the claim's deadline, without an interface call, when it has
// one.
func (g *group) live() bool {
	if g.dl != nil {
		return g.dl.Live()
	}
	return live(g.claim)
}

// allSections returns the index of every section of the group.
func (g *group) allSections() []int {
	all := make([]int, len(g.mu.floor))
	for i := range all {
		all[i] = i
	}
	return all
}

// section returns the group's section at index local, allocating its
// cur_seq memory on first use. Every cur_seq of a section starts at the
// section's max_seq when the group was loaded, so values jump past
// everything a previous owner could have handed out.
func (g *group) section(local int) (*section, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead.Load() {
		return nil, g.mu.deadErr
	}
	if s := g.mu.sections[local]; s != nil {
		return s, nil
	}
	sec := g.first + local
	s := &section{g: g, local: local, base: g.mu.floor[local], cur: newCounters(g.n.lay.uidsIn(sec))}
	if g.live() {
		g.raiseLocked(s)
	}
	g.mu.sections[local] = s
	// Published under mu, so that an unload (which takes mu first) always
	// finds it.
	g.n.sections[sec].Store(s)
	g.n.stats.sectionsLoaded.Add(1)
	return s, nil
}

// current returns the latest value taken for index i of section local:
// the max_seq at load for a section not yet allocated.
func (g *group) current(local int, i uint64) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead.Load() {
		return 0, g.mu.deadErr
	}
	if s := g.mu.sections[local]; s != nil {
		return s.base + s.cur.get(i), nil
	}
	return g.mu.floor[local], nil
}

// raiseLocked lets s hand out values up to its persisted max_seq.
//
// HAZARD: called only with persisted known to be in the store, the claim
// live and the group not unloaded.
func (g *group) raiseLocked(s *section) {
	lim := g.mu.persisted[s.local] - s.base
	if lim <= s.limit.Load() {
		return
	}
	pf := uint64(0)
	if r := g.n.cfg.reserve(g.mu.steps[s.local]); lim > r {
		pf = lim - r
	}
	s.prefetch.Store(pf)
	s.limit.Store(lim)
}

// calls returns the values handed out from the group's sections, and
// the memory their cur_seq offsets take.
func (g *group) calls() (calls uint64, bytes int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range g.mu.sections {
		if s != nil {
			calls += s.calls.Load()
			bytes += s.cur.bytes()
		}
	}
	return calls, bytes
}

// final returns the group's persisted state as this node knows it, unless
// a write of unknown outcome makes that uncertain.
func (g *group) final() (GroupState, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.reread {
		return GroupState{}, false
	}
	return GroupState{MaxSeqs: slices.Clone(g.mu.persisted), Revision: g.mu.rev}, true
}

// served returns, for each section, the highest value handed out of it
// at most: its max_seq at load where no uid was touched, its persisted
// max_seq where it is dense (counters.highest). For a group unloaded
// (kill), whose offsets no longer move.
func (g *group) served() []uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := slices.Clone(g.mu.floor)
	for i, s := range g.mu.sections {
		if s != nil {
			out[i] = s.base + s.cur.highest(g.mu.persisted[i]-s.base)
		}
	}
	return out
}

// finalState is a group as it was unloaded: its persisted state (not
// after a write of unknown outcome), the highest value of each section
// handed out at most, and the claim it was served under.
type finalState struct {
	GroupState
	served []uint64
	claim  Claim
}

// unloading is the unload of one installed instance of a group: done is
// closed once kill has set final (ok: known; not after a write of
// unknown outcome). The node keeps the latest instance's, for the release
// or the direct handoff that takes it once (taken).
type unloading struct {
	g     *group // until done
	done  chan struct{}
	final finalState
	ok    bool
	taken bool
}

// kill unloads the group at once: nothing more is handed out from it, and
// the next call loads it afresh (if this node may still serve it). err,
// wrapped with ErrUnavailable, is what its waiters and stragglers get.
func (g *group) kill(err error) {
	g.mu.Lock()
	if g.dead.Load() {
		g.mu.Unlock()
		return
	}
	g.dead.Store(true)
	g.mu.deadErr = fmt.Errorf("%w: group %d unloaded: %w", ErrUnavailable, g.idx, err)
	close(g.gone)
	var secs []*section
	for _, s := range g.mu.sections {
		if s != nil {
			s.dead.Store(true)
			s.limit.Store(0)
			secs = append(secs, s)
		}
	}
	g.mu.Unlock()
	n := g.n
	for _, s := range secs {
		n.sections[g.first+s.local].CompareAndSwap(s, nil)
		n.stats.sectionsLoaded.Add(-1)
		n.stats.retired.Add(s.calls.Load())
	}
	if n.groups[g.idx].CompareAndSwap(g, nil) {
		n.stats.groupsLoaded.Add(-1)
	}
	if u := g.unload; u != nil {
		// HAZARD: the final is this instance's own record, which the node
		// holds only while this is the group's latest instance
		// (Node.takeFinal): an older instance's final, set late, cannot
		// stand in for a newer one's, which may have handed out values
		// above it.
		f := finalState{claim: g.claim}
		st, ok := g.final()
		// HAZARD: a group unloaded because another writer changed it (not
		// a proof that failed: a table moved it) has no final this node
		// knows, whatever it persisted last.
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotOwner) && !errors.Is(err, ErrProofFailed) {
			ok = false
		}
		if ok {
			f.GroupState, f.served = st, g.served()
		}
		n.mu.Lock()
		u.final, u.ok, u.g = f, ok, nil
		n.mu.Unlock()
		close(u.done)
	}
	lvl := slog.LevelInfo
	if errors.Is(err, ErrClosed) {
		lvl = slog.LevelDebug // every group at once: Close logs the node's stop
	}
	n.log.Log(n.ctx, lvl, "seq facade: group unloaded", "group", g.idx, "sections", len(secs), "reason", err)
}

// adopt takes a state re-read after a write of unknown outcome (the read
// itself proving the claim). It is this node's own either way: unchanged
// (the write did not happen) or exactly the values the write tried (it
// did). Anything else means another writer wrote the group, which must
// then be unloaded: this node cannot know which of its values are still
// safe (ErrNotOwner).
func (g *group) adopt(st GroupState) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead.Load() {
		return g.mu.deadErr
	}
	if len(st.MaxSeqs) != len(g.mu.persisted) {
		return fmt.Errorf("%w: group %d re-read with %d sections, %d loaded", ErrCorrupt, g.idx, len(st.MaxSeqs), len(g.mu.persisted))
	}
	switch {
	case st.Revision == g.mu.rev && slices.Equal(st.MaxSeqs, g.mu.persisted):
		// The write did not happen (yet: if it does later, the next
		// write's revision check fails and the group reloads).
	case g.mu.attempted != nil && slices.Equal(st.MaxSeqs, g.mu.attempted):
		g.mu.persisted = st.MaxSeqs
	default:
		// HAZARD: adopting another writer's higher max_seq would let this
		// node hand out values that writer may have handed out.
		return fmt.Errorf("%w: group %d was written by another node after this node's write of unknown outcome (revision %d, this node knew %d)",
			ErrNotOwner, g.idx, st.Revision, g.mu.rev)
	}
	g.mu.rev = st.Revision
	g.mu.reread = false
	g.mu.attempted = nil
	if g.live() {
		for _, s := range g.mu.sections {
			if s != nil {
				g.raiseLocked(s)
			}
		}
	}
	return nil
}
