package seqfacade

import (
	"fmt"
	"sync"
	"sync/atomic"

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

	mu struct {
		sync.Mutex
		deadErr   error
		sections  []*section // allocated sections, by index in the group
		persisted []uint64   // each section's max_seq known to be persisted
		rev       int64      // the store revision persisted was read or written at
		reread    bool       // a write's outcome is unknown: read before writing
		wantN     int        // sections with ext.wanted
		next      *round     // the round that will raise the wanted sections
		running   bool       // extendLoop is running
		failing   error      // the last round's error while retrying; nil once one succeeds
	}
}

func (n *Node) newGroup(idx int, c Claim, st GroupState) *group {
	g := &group{n: n, idx: idx, first: n.lay.firstSection(idx), claim: c, gone: make(chan struct{})}
	if d, ok := c.(deadlined); ok {
		g.dl = d.deadline()
	}
	g.mu.sections = make([]*section, len(st.MaxSeqs))
	g.mu.persisted = st.MaxSeqs
	g.mu.rev = st.Revision
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

// section returns the group's section at index local, allocating its
// cur_seq memory on first use. Every cur_seq of a new section starts at
// the section's persisted max_seq: after a load nothing is handed out
// until an extension is persisted, so values jump past everything a
// previous process could have handed out.
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
	s := &section{g: g, local: local, base: g.mu.persisted[local], cur: make([]atomic.Uint64, g.n.lay.uidsIn(sec))}
	g.mu.sections[local] = s
	// Published under mu, so that an unload (which takes mu first) always
	// finds it.
	g.n.sections[sec].Store(s)
	g.n.stats.sectionsLoaded.Add(1)
	g.n.stats.curSeqBytes.Add(int64(8 * len(s.cur)))
	return s, nil
}

// current returns the latest value taken for index i of section local:
// the persisted max_seq for a section not yet allocated.
func (g *group) current(local int, i uint64) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead.Load() {
		return 0, g.mu.deadErr
	}
	if s := g.mu.sections[local]; s != nil {
		return s.base + s.cur[i].Load(), nil
	}
	return g.mu.persisted[local], nil
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
	if r := g.n.reserve; lim > r {
		pf = lim - r
	}
	s.prefetch.Store(pf)
	s.limit.Store(lim)
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
		n.stats.curSeqBytes.Add(-int64(8 * len(s.cur)))
	}
	if n.groups[g.idx].CompareAndSwap(g, nil) {
		n.stats.groupsLoaded.Add(-1)
	}
	n.log.Info("seq facade: group unloaded", "group", g.idx, "sections", len(secs), "reason", err)
}

// adopt takes a re-read state as what is persisted, raising sections to
// it: it can only be higher than what this node knew (a write whose
// outcome was unknown did happen). Lower means someone else wrote the
// group, and the group must be unloaded.
func (g *group) adopt(st GroupState) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead.Load() {
		return g.mu.deadErr
	}
	if len(st.MaxSeqs) != len(g.mu.persisted) {
		return fmt.Errorf("%w: group %d re-read with %d sections, %d loaded", ErrCorrupt, g.idx, len(st.MaxSeqs), len(g.mu.persisted))
	}
	for l, m := range st.MaxSeqs {
		if m < g.mu.persisted[l] {
			return fmt.Errorf("%w: group %d's section %d: persisted max_seq went down from %d to %d",
				ErrNotOwner, g.idx, g.first+l, g.mu.persisted[l], m)
		}
	}
	g.mu.persisted = st.MaxSeqs
	g.mu.rev = st.Revision
	g.mu.reread = false
	if g.live() {
		for _, s := range g.mu.sections {
			if s != nil {
				g.raiseLocked(s)
			}
		}
	}
	return nil
}
