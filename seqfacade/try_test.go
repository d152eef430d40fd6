package seqfacade_test

import (
	"testing"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
)

// TestTryNextAndTryCurrent: the paths that never wait answer only for a
// loaded section and a live claim, hand out what Next would, and hand
// out nothing when they say false.
func TestTryNextAndTryCurrent(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("n1")
	n := mustServe(t, cli, cfg, clock.NewReal())
	const uid = 42
	for _, bad := range []uint64{0, 1 << 40} { // 0, and beyond the default uid limit
		if v, ok := n.TryNext(bad); ok {
			t.Errorf("TryNext(%d) = %d, want false", bad, v)
		}
		if v, ok := n.TryCurrent(bad); ok {
			t.Errorf("TryCurrent(%d) = %d, want false", bad, v)
		}
	}
	first, err := n.Next(ctxT(t), uid) // loads the section if it was not
	if err != nil {
		t.Fatal(err)
	}
	for want := first + 1; want < first+50; want++ {
		v, ok := n.TryNext(uid)
		if !ok || v != want {
			t.Fatalf("TryNext = %d, %v; want %d", v, ok, want)
		}
		if c, ok := n.TryCurrent(uid); !ok || c != v {
			t.Fatalf("TryCurrent = %d, %v after %d", c, ok, v)
		}
		if c, err := n.Current(ctxT(t), uid); err != nil || c != v {
			t.Fatalf("Current = %d, %v after %d", c, err, v)
		}
	}
	last, _ := n.TryCurrent(uid)
	if err := n.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if v, ok := n.TryNext(uid); ok {
		t.Errorf("TryNext after Close = %d, want false", v)
	}
	if v, ok := n.TryCurrent(uid); ok {
		t.Errorf("TryCurrent after Close = %d, want false", v)
	}
	// A node that takes over continues above the last value.
	m := mustServe(t, cli, cfg, clock.NewReal())
	v, err := m.Next(ctxT(t), uid)
	if err != nil || v <= last {
		t.Fatalf("after a restart, Next = %d, %v; want above %d", v, err, last)
	}
}
