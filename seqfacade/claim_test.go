package seqfacade_test

import (
	"errors"
	"testing"
	"time"

	"github.com/migsvc/mig/seqfacade"
)

// TestDeadlineReadAtRequestTime: past the claim's deadline nothing is
// handed out or shown, even though Done has not closed (the goroutine
// that would close it is late): Next, NextBatch and Current read the
// clock themselves.
func TestDeadlineReadAtRequestTime(t *testing.T) {
	cfg := seqfacade.Config{SectionSize: 10, GroupSize: 2, UIDLimit: 100, Step: 1000}
	h := newMemHarness(t, cfg)
	c := h.own.claim
	c.clk, c.deadline = h.clk, h.clk.Mono()+time.Second
	var hist history
	nextAll(t, h.n, &hist, 1, 2, 55)

	h.clk.Advance(999 * time.Millisecond)
	nextAll(t, h.n, &hist, 1, 2, 55)
	if _, err := h.n.NextBatch(ctxT(t), []uint64{1, 2, 55}); err != nil {
		t.Fatal(err)
	}
	issued := h.n.Stats().Issued

	h.clk.Advance(time.Millisecond) // at the deadline: Done still open
	for _, call := range map[string]func() error{
		"Next":      func() error { _, err := h.n.Next(ctxT(t), 1); return err },
		"Next cold": func() error { _, err := h.n.Next(ctxT(t), 99); return err },
		"NextBatch": func() error { _, err := h.n.NextBatch(ctxT(t), []uint64{2, 55}); return err },
		"Current":   func() error { _, err := h.n.Current(ctxT(t), 2); return err },
	} {
		if err := call(); !isUnavailable(err) {
			t.Fatalf("past the deadline: %v, want ErrUnavailable", err)
		}
	}
	if got := h.n.Stats().Issued; got != issued {
		t.Fatalf("%d values handed out past the deadline", got-issued)
	}
}

// TestExhausted: a section whose max_seq reaches MaxSeq hands out up to
// it, then ErrExhausted, without holding up its group's other sections.
func TestExhausted(t *testing.T) {
	cfg := seqfacade.Config{SectionSize: 10, GroupSize: 2, UIDLimit: 100, Step: 100}
	h := newMemHarness(t, cfg)
	h.store.groups[0] = seqfacade.GroupState{MaxSeqs: []uint64{seqfacade.MaxSeq - 3, 0}, Revision: 1}
	h.store.rev = 1
	for want := uint64(seqfacade.MaxSeq - 2); want <= seqfacade.MaxSeq; want++ {
		v, err := h.n.Next(ctxT(t), 4)
		if err != nil || v != want {
			t.Fatalf("Next = %d, %v, want %d", v, err, want)
		}
	}
	_, err := h.n.Next(ctxT(t), 4)
	if !errors.Is(err, seqfacade.ErrExhausted) || isUnavailable(err) {
		t.Fatalf("Next past MaxSeq = %v, want ErrExhausted alone", err)
	}
	if _, err := h.n.Next(ctxT(t), 14); err != nil {
		t.Fatalf("the other section of the group: %v", err)
	}
}
