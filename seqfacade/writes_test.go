package seqfacade_test

import (
	"testing"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/seqfacade"
)

// TestWritesPerMillion counts the etcd writes a million calls make at the
// default step, once the node's groups are active (their activation
// wrote a step for every section): a hot uid's section doubles its step
// each time it needs another within StepPeriod, so a few writes; calls
// spread over every uid of a section write nothing.
func TestWritesPerMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("two million calls")
	}
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	n := mustServe(t, cli, fastConfig("a"), clock.NewReal())
	settled(t, n)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name     string
		uid      func(i uint64) uint64
		min, max uint64
	}{
		{"hot uid", func(uint64) uint64 { return 1 }, 2, 20},
		{"uniform over a section", func(i uint64) uint64 { return 100_000 + i%100_000 }, 0, 0},
	} {
		before := n.Stats()
		for i := range uint64(1_000_000) {
			if _, err := n.Next(ctx, tc.uid(i)); err != nil {
				t.Fatal(err)
			}
		}
		after := n.Stats()
		failed := after.WriteFailures - before.WriteFailures
		w := after.Writes - before.Writes - failed // a failed write is retried
		t.Logf("%s: %d etcd writes per million calls (and %d failed, retried)", tc.name, w, failed)
		if w < tc.min || w > tc.max {
			t.Fatalf("%s: %d writes, want %d..%d", tc.name, w, tc.min, tc.max)
		}
	}
}

// TestBatchAfterActivation: once a node's groups are active, a batch
// over fresh sections of two groups persists nothing (the activation
// wrote a step for every section of every group, one write a group), and
// hands out one value per uid.
func TestBatchAfterActivation(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("a")
	n := mustServe(t, cli, cfg, clock.NewReal())
	settled(t, n)
	// A write that failed (timed out on a loaded host, or refused by a
	// table written meanwhile) is tried again: what counts is the writes
	// that went through.
	if st := n.Stats(); st.Writes-st.WriteFailures != uint64(st.GroupsLoaded) {
		t.Fatalf("activation: %d writes (%d of them failed) for %d groups", st.Writes, st.WriteFailures, st.GroupsLoaded)
	}
	s := uint64(seqfacade.DefaultSectionSize)
	g := uint64(seqfacade.DefaultGroupSize) * s
	uids := []uint64{1, 2, s, 2*s + 5, 127 * s, g, g + 1, g + 3*s}
	before := n.Stats()
	vs, err := n.NextBatch(ctxT(t), uids)
	if err != nil {
		t.Fatal(err)
	}
	after := n.Stats()
	if w := after.Writes - before.Writes; w != 0 {
		t.Fatalf("%d writes for a batch over two fresh groups, want none", w)
	}
	// Sparse sections: a few dozen bytes a uid touched, not 8 a uid of
	// the section.
	if after.SectionsLoaded != 6 || after.CurSeqBytes > 64*int64(len(uids)) {
		t.Fatalf("stats %+v: want 6 sections, a few dozen bytes a uid touched", after)
	}
	if after.Issued-before.Issued != uint64(len(uids)) {
		t.Fatalf("issued %d for %d uids", after.Issued-before.Issued, len(uids))
	}
	p := persisted(t, cli, cfg)
	for k, u := range uids {
		if m := p[int(u/s)]; vs[k] != 1 || m != seqfacade.DefaultStep {
			t.Fatalf("uid %d: %d with max_seq %d, want 1 with %d", u, vs[k], m, seqfacade.DefaultStep)
		}
	}
	// A second batch within range writes nothing.
	if _, err := n.NextBatch(ctxT(t), uids); err != nil {
		t.Fatal(err)
	}
	if w := n.Stats().Writes - after.Writes; w != 0 {
		t.Fatalf("%d writes for a batch within range", w)
	}
}
