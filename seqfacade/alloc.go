package seqfacade

import (
	"context"
	"errors"
	"fmt"
)

// Next hands out uid's next sequence: above every value handed out for
// uid before, by this node or any earlier holder of its group, and never
// above its section's persisted max_seq. The hot path is a few atomic
// loads and one compare-and-swap; it waits (for ctx at most) only when
// the uid's section has used up its persisted range and the next
// extension is not yet written, or when the group is not loaded yet.
//
// The value is handed out only if, read after it was taken, the clock is
// still before the claim's deadline (see the HAZARD in the code).
//
// A call for a group still activating on this node waits for it, within
// ctx.
//
// Errors: ErrInvalidUID for uid 0 or uid >= UIDLimit; an error wrapping
// ErrUnavailable when no safe value can be handed out now (registering,
// activating past ctx, the table not confirmed, etcd failing, closed);
// a *NotOwnerError (matching ErrNotOwner) when the routing table gives
// uid's group to another node; a *NotHomeError (matching ErrNotHome) for a
// uid another datacenter's own store serves; ErrCorrupt for a group whose
// persisted value is unreadable.
func (n *Node) Next(ctx context.Context, uid uint64) (uint64, error) {
	if v, ok := n.TryNext(uid); ok {
		return v, nil
	}
	return n.nextSlow(ctx, uid)
}

// TryNext is Next's hot path alone: uid's next value if it can be handed
// out at once, without waiting and without an error to report (uid valid,
// its section loaded, its persisted range not used up, the node's claim
// live), and false otherwise, having handed out nothing: then Next says
// why, or waits. A caller that bounds Next's wait with a context of its
// own (the RPC server does) can call TryNext first and build that context
// only when it is needed.
func (n *Node) TryNext(uid uint64) (uint64, bool) {
	if !n.lay.valid(uid) {
		return 0, false
	}
	sec := uid / n.lay.sectionSize
	s := n.sections[sec].Load()
	if s == nil {
		return 0, false
	}
	// HAZARD: the deadline is checked by reading the clock after the
	// value is taken, not by a flag some goroutine clears: if the check
	// passes, the take happened before the deadline, hence before any
	// next owner activates, whatever delays this goroutine or the
	// claim's. A failed check skips the value. (docs/seq-failover.md)
	if v, ok := n.take(s, uid-sec*n.lay.sectionSize); ok && s.g.live() {
		s.calls.Add(1)
		return v, true
	}
	return 0, false
}

func (n *Node) nextSlow(ctx context.Context, uid uint64) (uint64, error) {
	if !n.lay.valid(uid) {
		return 0, n.invalid(uid)
	}
	sec, i := n.lay.locate(uid)
	reloads := 0
	for {
		s, err := n.section(ctx, sec)
		if err != nil {
			return 0, n.fail(err)
		}
		if v, ok := n.take(s, i); ok {
			if !s.g.live() { // HAZARD: as in Next
				return 0, n.fail(n.lapsed(s.g.idx))
			}
			s.calls.Add(1)
			return v, nil
		}
		rounds, err := s.g.request([]need{{s, i}}, true)
		if err == nil {
			err = n.await(ctx, rounds)
		}
		if err != nil {
			if s.dead.Load() && reloads < 2 {
				reloads++ // unloaded under us: the group may load afresh
				continue
			}
			return 0, n.fail(err)
		}
	}
}

// section returns loaded section sec, loading its group and allocating
// its cur_seq memory as needed.
func (n *Node) section(ctx context.Context, sec int) (*section, error) {
	if s := n.sections[sec].Load(); s != nil && !s.dead.Load() {
		return s, nil
	}
	gi, local := n.lay.groupOf(sec)
	g, err := n.group(ctx, gi)
	if err != nil {
		return nil, err
	}
	return g.section(local)
}

// await waits for rounds, returning the first one's error, or ctx's.
func (n *Node) await(ctx context.Context, rounds []*round) error {
	counted := false
	for _, r := range rounds {
		select {
		case <-r.done:
		default:
			if !counted {
				n.stats.waits.Add(1)
				counted = true
			}
			select {
			case <-r.done:
			case <-ctx.Done():
				return fmt.Errorf("%w: waiting for a max_seq write: %w", ErrUnavailable, ctx.Err())
			}
		}
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// Current returns the latest value taken for uid: the last one handed out
// (or skipped by a failed batch), or, for a uid untouched since its group
// was loaded, the section's persisted max_seq, where its next value will
// start above. It consumes nothing. Errors are those of Next.
func (n *Node) Current(ctx context.Context, uid uint64) (uint64, error) {
	if v, ok := n.TryCurrent(uid); ok {
		return v, nil
	}
	if !n.lay.valid(uid) {
		return 0, n.invalid(uid)
	}
	sec, i := n.lay.locate(uid)
	gi, local := n.lay.groupOf(sec)
	g, err := n.group(ctx, gi)
	if err != nil {
		return 0, n.fail(err)
	}
	v, err := g.current(local, i)
	if err == nil && !g.live() {
		err = n.lapsed(gi)
	}
	if err != nil {
		return 0, n.fail(err)
	}
	return v, nil
}

// TryCurrent is Current's hot path alone, as TryNext is Next's: uid's
// current value if its section is loaded and the node's claim live, and
// false otherwise.
func (n *Node) TryCurrent(uid uint64) (uint64, bool) {
	if !n.lay.valid(uid) {
		return 0, false
	}
	sec, i := n.lay.locate(uid)
	s := n.sections[sec].Load()
	if s == nil {
		return 0, false
	}
	// HAZARD: a read too must not show a value older than one the next
	// owner has handed out: checked after reading, as in Next.
	if v := s.base + s.cur.get(i); !s.dead.Load() && s.g.live() {
		return v, true
	}
	return 0, false
}

// lapsed says why a call's claim on group gi was found ended after it
// took its value (which is skipped): the group moved (a *NotOwnerError, so
// that the caller goes to its new owner at once, as in a handoff), or the
// node's right to serve ran out (unavailable).
func (n *Node) lapsed(gi int) error {
	if _, err := n.own.Claim(gi); errors.Is(err, ErrNotOwner) || errors.Is(err, ErrNotHome) {
		return err
	}
	return fmt.Errorf("%w: node's claim on group %d has expired", ErrUnavailable, gi)
}

func (n *Node) invalid(uid uint64) error {
	if uid == 0 {
		return fmt.Errorf("%w: uid 0 (uids start at 1)", ErrInvalidUID)
	}
	return fmt.Errorf("%w: uid %d is not below the uid limit %d", ErrInvalidUID, uid, n.lay.uidLimit)
}

// fail counts err if it is an unavailable answer or a redirection.
func (n *Node) fail(err error) error {
	switch {
	case errors.Is(err, ErrUnavailable):
		n.stats.unavailable.Add(1)
	case errors.Is(err, ErrNotOwner), errors.Is(err, ErrNotHome):
		n.stats.redirects.Add(1)
	}
	return err
}
