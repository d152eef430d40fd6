package seqfacade

import (
	"context"
	"errors"
	"fmt"
)

// NextBatch hands out the next sequence of every uid in uids, in order:
// all of them, or none and an error. A group message advances every
// member's sequence this way. Groups still activating are waited for,
// within ctx, as Next waits.
//
// Input is checked before anything is consumed: more than
// Config.MaxBatch uids is ErrBatchTooLarge, an invalid uid
// ErrInvalidUID, a repeated uid ErrDuplicateUID, each naming the culprit.
// Then every uid at its section's max_seq is extended first, in one write
// per group touched (so at most one per section); only once all have
// room are values taken. If an extension fails the batch fails with
// ErrUnavailable having taken nothing. With a routing table, a batch that
// names a uid of another node's group answers a *NotOwnerError and takes
// nothing: callers split batches by the table (route.Table.Lookup). Only
// when concurrent callers take
// a section's last values between the check and the take and the retried
// extension then fails, or when the node's claim expires while it takes,
// are values already taken for some uids lost: skipped numbers, never
// handed out and never reused, and visible in Current. Nothing is ever
// taken above a persisted max_seq.
func (n *Node) NextBatch(ctx context.Context, uids []uint64) ([]uint64, error) {
	if err := n.checkBatch(uids); err != nil {
		return nil, err
	}
	out := make([]uint64, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	secs := make([]*section, len(uids))
	idx := make([]uint64, len(uids))
	// Start every missing group loading before waiting for any.
	for k, uid := range uids {
		sec, i := n.lay.locate(uid)
		idx[k] = i
		if s := n.sections[sec].Load(); s != nil && !s.dead.Load() {
			secs[k] = s
			continue
		}
		gi, _ := n.lay.groupOf(sec)
		var act *activatingError
		if _, err := n.startLoad(gi); err != nil && !errors.As(err, &act) {
			return nil, n.fail(err)
		}
		// A group still activating is waited for below, as Next waits.
	}
	for k, uid := range uids {
		if secs[k] == nil {
			sec, _ := n.lay.locate(uid)
			s, err := n.section(ctx, sec)
			if err != nil {
				return nil, n.fail(err)
			}
			secs[k] = s
		}
	}

	pending := make([]int, len(uids))
	for k := range pending {
		pending[k] = k
	}
	// Concurrent callers may drain a section between the wait and the
	// take; the batch then asks again. Every turn either waits for a
	// write or follows another caller's progress, until ctx ends.
	for ctx.Err() == nil {
		byGroup := map[*group][]need{}
		for _, k := range pending {
			s, i := secs[k], idx[k]
			if s.cur.get(i) >= s.limit.Load() {
				byGroup[s.g] = append(byGroup[s.g], need{s, i})
			}
		}
		var rounds []*round
		for g, needs := range byGroup {
			rs, err := g.request(needs, true)
			if err != nil {
				return nil, n.fail(err)
			}
			rounds = append(rounds, rs...)
		}
		if err := n.await(ctx, rounds); err != nil {
			return nil, n.fail(err)
		}
		if g := secs[0].g; !g.live() { // before taking anything: nothing skipped
			return nil, n.fail(n.lapsed(g.idx))
		}
		left := pending[:0]
		for _, k := range pending {
			if v, ok := n.take(secs[k], idx[k]); ok {
				out[k] = v
			} else {
				left = append(left, k)
			}
		}
		pending = left
		if len(pending) == 0 {
			// HAZARD: one clock reading after every take, as in Next; if
			// a claim expired meanwhile, every value is skipped.
			var checked Claim
			for _, s := range secs {
				if s.g.claim == checked {
					continue // one reading per claim: one for the whole batch on one node
				}
				if !s.g.live() {
					return nil, n.fail(n.lapsed(s.g.idx))
				}
				checked = s.g.claim
			}
			for _, s := range secs {
				s.calls.Add(1)
			}
			return out, nil
		}
	}
	return nil, n.fail(fmt.Errorf("%w: %d of %d uids still waiting for their sections: %w",
		ErrUnavailable, len(pending), len(uids), ctx.Err()))
}

// checkBatch validates a batch without consuming anything.
func (n *Node) checkBatch(uids []uint64) error {
	if len(uids) > n.cfg.MaxBatch {
		return fmt.Errorf("%w: %d uids, the limit is %d", ErrBatchTooLarge, len(uids), n.cfg.MaxBatch)
	}
	seen := make(map[uint64]int, len(uids))
	for k, uid := range uids {
		if !n.lay.valid(uid) {
			return fmt.Errorf("uids[%d]: %w", k, n.invalid(uid))
		}
		if j, dup := seen[uid]; dup {
			return fmt.Errorf("%w: uid %d at uids[%d] and uids[%d]", ErrDuplicateUID, uid, j, k)
		}
		seen[uid] = k
	}
	return nil
}
