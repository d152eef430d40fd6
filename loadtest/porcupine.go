package loadtest

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/anishathalye/porcupine"
)

// seqState is the state of one uid's sequence in the porcupine model: the
// last value handed out, if any.
type seqState struct {
	set  bool
	last uint64
}

// seqModel is a uid's sequence as a sequential object: each operation
// returns a value above every value before it. Histories are split per uid
// before they reach porcupine, so the model holds one uid.
var seqModel = porcupine.Model{
	Init: func() any { return seqState{} },
	Step: func(state, _, output any) (bool, any) {
		s, v := state.(seqState), output.(uint64)
		if s.set && v <= s.last {
			return false, s
		}
		return true, seqState{set: true, last: v}
	},
	DescribeOperation: func(_, output any) string { return fmt.Sprintf("next() -> %d", output) },
}

// porcupineLocked asks porcupine about every uid, when the history is
// small enough, and records a KindCheckerDisagreement for each uid where
// its answer differs from the order check's (flagged: the uids the order
// check found violations on).
func (c *Checker) porcupineLocked(f *finding, flagged map[uint64]bool) PorcupineResult {
	var r PorcupineResult
	switch n := len(c.mu.seqs); {
	case n == 0:
		r.Note = "no sequences"
		return r
	case c.cfg.PorcupineMaxOps < 0:
		r.Note = "disabled"
		return r
	case n > c.cfg.PorcupineMaxOps:
		r.Note = fmt.Sprintf("skipped: %d operations, more than %d; the order check alone decided", n, c.cfg.PorcupineMaxOps)
		return r
	}
	r.Ran = true
	seqs := c.mu.seqs // sorted by uid, then sequence, by checkSeqsLocked
	for i := 0; i < len(seqs); {
		j := i + 1
		for j < len(seqs) && seqs[j].uid == seqs[i].uid {
			j++
		}
		uid := seqs[i].uid
		ops := make([]porcupine.Operation, 0, j-i)
		for _, e := range seqs[i:j] {
			a := c.mu.answers[e.ans]
			ops = append(ops, porcupine.Operation{ClientId: int(a.client), Input: uid, Call: a.call, Output: e.seq, Return: a.ret})
		}
		// Porcupine's search is fastest when operations come in call order.
		slices.SortStableFunc(ops, func(x, y porcupine.Operation) int { return cmp.Compare(x.Call, y.Call) })
		r.UIDs++
		r.Ops += len(ops)
		switch porcupine.CheckOperationsTimeout(seqModel, ops, c.cfg.PorcupineTimeout) {
		case porcupine.Illegal:
			r.Illegal++
			if !flagged[uid] {
				f.add(KindCheckerDisagreement, "uid %d: porcupine finds its %d operations not linearizable, but the order check found nothing wrong", uid, len(ops))
			}
		case porcupine.Unknown:
			r.Unknown++
		case porcupine.Ok:
			if flagged[uid] {
				f.add(KindCheckerDisagreement, "uid %d: the order check found a violation, but porcupine finds its %d operations linearizable", uid, len(ops))
			}
		}
		i = j
	}
	return r
}
