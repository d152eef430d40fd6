package seqfacade

import "sync/atomic"

// section is the in-memory state of one loaded section: every uid's
// cur_seq, as an offset from base, and the persisted max_seq, as the
// offset limit. Its atomics are the lock-free hot path; the rest is
// guarded by its group's mu.
type section struct {
	g     *group
	local int    // index in the group
	base  uint64 // the section's max_seq when its group was loaded

	// limit: values base+1 .. base+limit are persisted (max_seq =
	// base+limit). It only grows, after a write is acknowledged, until
	// the group is unloaded, which sets it to 0.
	limit atomic.Uint64
	// prefetch: a uid whose offset passes it starts the next extension.
	prefetch atomic.Uint64
	// requested mirrors ext.wanted || ext.round != nil, so the hot path
	// asks for an extension once, not on every call.
	requested atomic.Bool
	// dead is set when the group is unloaded; see take.
	dead atomic.Bool

	// calls counts the values handed out from the section (for stats and
	// load reports), on a cache line of its own: it is written on every
	// call, the fields above only read.
	_     [64]byte
	calls atomic.Uint64
	_     [56]byte

	// ext is guarded by g.mu.
	ext struct {
		wanted bool   // in the group's next round
		round  *round // the round in flight that raises this section
	}

	// cur holds, for each uid of the section, the number of values taken
	// above base: its cur_seq is base+cur.get(i) (counters.go).
	cur *counters
}

// take takes the next value of uid (index i in s) if it is persisted. It
// reports false when the uid has reached the section's max_seq or the
// group was unloaded. The caller hands the value out only if the claim is
// still live when take returns (see Next).
//
// HAZARD: a value is taken only if it is at most base+limit, a max_seq
// known to be persisted, and only if its CAS happened before the group
// was unloaded: dead is read after the CAS, so a caller stalled between
// reading limit and its CAS cannot hand out a value below one that a
// reloaded group has handed out since.
func (n *Node) take(s *section, i uint64) (uint64, bool) {
	c, ok := s.cur.take(i, &s.limit)
	if !ok {
		return 0, false
	}
	if s.dead.Load() {
		return 0, false // c+1 is skipped, never handed out
	}
	if c >= s.prefetch.Load() && !s.requested.Load() {
		s.g.prefetch(s, i)
	}
	return s.base + c + 1, true
}
