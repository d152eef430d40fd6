package faultproxy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
)

// A partition between a client and etcd: calls time out during the cut,
// and the same gRPC connection works again once it heals.
func TestEtcdThroughCut(t *testing.T) {
	srv := etcdtest.Start(t)
	p := newProxy(t, strings.TrimPrefix(srv.Endpoints()[0], "http://"))
	cli := etcdtest.Client(t, "http://"+p.Addr())

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("Put through the proxy: %v", err)
	}
	accepted := p.Stats().Accepted

	p.Cut()
	cctx, ccancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	_, err := cli.Get(cctx, "k")
	ccancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get during the cut: %v, want context.DeadlineExceeded", err)
	}

	p.Restore()
	gctx, gcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer gcancel()
	r, err := cli.Get(gctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("Get after Restore = %v, %v; want k=v", r, err)
	}
	if got := p.Stats().Accepted; got != accepted {
		t.Fatalf("the client reconnected (%d connections, was %d): the cut was not a silent partition", got, accepted)
	}
}
