package seqfacade_test

import (
	"errors"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/seqfacade"
)

// TestGroupKeyDeleted: an operator deletes one group's max_seq key under
// a live node. Read as zeros it would start every uid of the group again
// from 1; the node refuses the group instead (ErrCorrupt), and never
// hands out a value below one it handed out.
func TestGroupKeyDeleted(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("a")
	cfg.Step = 100
	n := mustServe(t, cli, cfg, clock.NewReal())
	settled(t, n)
	var h history
	for range 150 { // past a step: the group is written again
		nextAll(t, n, &h, 5)
	}
	if _, err := cli.Delete(ctxT(t), "/mig/seq/groups/00000000"); err != nil {
		t.Fatal(err)
	}
	src := clock.NewReal()
	end := src.Mono() + 3*time.Second
	refused := false
	for src.Mono() < end {
		v, err := n.Next(ctxT(t), 5)
		switch {
		case err == nil && v <= h.max(5):
			t.Fatalf("uid 5 got %d after %d: the deleted key was read as zeros", v, h.max(5))
		case err == nil:
			h.add(5, v)
		case errors.Is(err, seqfacade.ErrCorrupt):
			refused = true
		case !isUnavailable(err):
			t.Fatalf("Next: %v", err)
		}
		<-src.After(5 * time.Millisecond)
	}
	if !refused {
		t.Fatal("the group whose key was deleted was never refused as corrupt")
	}
}
