package seqfacade_test

import (
	"testing"

	"github.com/migsvc/mig/seqfacade"
)

// TestAdoptOnlyOwnWrite: after a max_seq write of unknown outcome, the
// node re-reads the group before writing again. Finding there a higher
// max_seq that it did not write (another writer's: the group's next owner
// had loaded it and moved it on) it must not take it as its own and hand
// out values below it, which that writer may have handed out: it unloads
// the group, and the next call loads it afresh, above everything. (The
// code before this change took any higher value as its own.)
func TestAdoptOnlyOwnWrite(t *testing.T) {
	cfg := seqfacade.Config{SectionSize: 10, GroupSize: 2, UIDLimit: 100, Step: 10, PrefetchFraction: 1}
	h := newMemHarness(t, cfg)
	var hist history
	nextAll(t, h.n, &hist, 1, 1, 1) // the load wrote max_seq 10; uid 1 at 3
	for range 7 {
		nextAll(t, h.n, &hist, 1) // uid 1 at 10, its section's max_seq
	}
	// The next extension (max_seq 20) is lost, and the caller cannot
	// tell whether it happened: the call fails, unavailable.
	h.store.inject(failBefore)
	if _, err := h.n.Next(ctxT(t), 1); !isUnavailable(err) {
		t.Fatalf("Next with its write lost: %v", err)
	}
	// Meanwhile another writer, under the same proof, moved the group on:
	// it handed out up to 95 for uid 1 from max_seq 100.
	h.store.mu.Lock()
	h.store.rev++
	st := h.store.groups[0]
	h.store.groups[0] = seqfacade.GroupState{MaxSeqs: []uint64{100, st.MaxSeqs[1]}, Revision: h.store.rev}
	h.store.mu.Unlock()
	const theirs = 95

	h.advance() // past the retry backoff
	for range 30 {
		v, err := h.n.Next(ctxT(t), 1)
		if err != nil {
			if isUnavailable(err) {
				h.advance()
				continue
			}
			t.Fatal(err)
		}
		if v <= theirs {
			t.Fatalf("uid 1 got %d after another writer's max_seq 100 (it handed out up to %d): the re-read was taken as this node's own", v, theirs)
		}
	}
	if got := h.store.max(0, 0); got < 100 {
		t.Fatalf("max_seq %d", got)
	}
}
