package seqfacade_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/seqfacade"
)

// TestStorageCut cuts the node from etcd while calls go on: calls within
// the already persisted range succeed, calls beyond it answer
// ErrUnavailable, nothing handed out is above what was persisted before
// the cut, the node stops serving within a confirmation's right (the
// activation delay less the margin) after the cut, and after the cut
// heals it serves again above everything.
func TestStorageCut(t *testing.T) {
	srv := etcdtest.Start(t)
	direct := etcdtest.Client(t, srv.Endpoints()...)
	cli, proxy := proxied(t, srv.Endpoints()[0])
	src := clock.NewReal()
	cfg := fastConfig("a")
	cfg.Step = 500
	n := mustServe(t, cli, cfg, src)

	hot := uint64(1)
	cool := []uint64{2, 100_001, 50_000_000}
	var h history
	nextAll(t, n, &h, append([]uint64{hot}, cool...)...)

	type call struct {
		uid, v uint64
		at     time.Duration // after the call returned
		err    error
	}
	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	caller := func(uids []uint64, pause time.Duration) {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			u := uids[i%len(uids)]
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			v, err := n.Next(ctx, u)
			cancel()
			at := src.Mono()
			if err == nil {
				h.add(u, v)
			}
			mu.Lock()
			calls = append(calls, call{u, v, at, err})
			mu.Unlock()
			if err != nil {
				<-src.After(time.Millisecond)
			}
			<-src.After(pause)
		}
	}
	wg.Go(func() { caller([]uint64{hot}, 0) })
	wg.Go(func() { caller(cool, 2*time.Millisecond) })

	<-src.After(300 * time.Millisecond)
	proxy.Cut()
	cut := src.Mono()
	before := persisted(t, direct, cfg)
	<-src.After(2500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n.Ready() == nil {
		t.Fatal("node cut from etcd for 2.5s still serving")
	}

	var okHot, okCool, unavailable int
	for _, c := range calls {
		if c.at < cut {
			continue
		}
		if c.err != nil {
			if !isUnavailable(c.err) {
				t.Fatalf("uid %d during the cut: %v, want ErrUnavailable", c.uid, c.err)
			}
			unavailable++
			continue
		}
		sec := int(c.uid / seqfacade.DefaultSectionSize)
		if c.v > before[sec] {
			t.Fatalf("uid %d got %d during the cut, above the %d persisted before it", c.uid, c.v, before[sec])
		}
		if right := cfg.ActivationDelay - cfg.Margin; c.at > cut+right+50*time.Millisecond {
			t.Fatalf("uid %d got %d at %v after the cut, past a confirmation's right of %v", c.uid, c.v, c.at-cut, right)
		}
		if c.uid == hot {
			okHot++
		} else {
			okCool++
		}
	}
	t.Logf("during the cut: %d hot and %d cool values within the persisted range, %d unavailable", okHot, okCool, unavailable)
	if okCool == 0 || unavailable == 0 {
		t.Fatalf("during the cut: %d values within range, %d unavailable: want both", okHot+okCool, unavailable)
	}

	proxy.Restore()
	waitFor(t, "serving again after the cut", 10*time.Second, ready(n))
	after := persisted(t, direct, cfg)
	for _, u := range h.uids() {
		sec := int(u / seqfacade.DefaultSectionSize)
		if m := h.max(u); m > after[sec] {
			t.Fatalf("uid %d: %d handed out, persisted max_seq %d", u, m, after[sec])
		}
	}
	assertAbove(t, n, &h)
	if s := n.Stats(); s.LeaseLosses < 1 || s.Registrations < 2 || s.Unavailable == 0 {
		t.Fatalf("stats after the cut: %+v", s)
	}
}
