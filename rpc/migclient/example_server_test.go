package migclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/seqfacade"
)

// localServer is what the examples call: the server of package rpc on
// loopback, as one `mig serve` runs it, over a real generator (worker 7
// of datacenter tokyo, its clock standing still one day after the
// epoch) and, for sequences, a real sequence node on an embedded etcd in
// a temporary directory.
type localServer struct {
	URL   string
	close []func() // in the order to run them
}

// Close stops the server and everything under it, and removes the
// directory.
func (s *localServer) Close() {
	for _, f := range s.close {
		f()
	}
}

// startLocalServer starts a localServer, with SeqService when seq is set.
func startLocalServer(seq bool) (_ *localServer, err error) {
	s := &localServer{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// Stopped in the reverse order of starting; etcd's clients before
	// etcd itself, or it waits for them.
	onClose := func(f func()) { s.close = append([]func(){f}, s.close...) }

	gen, err := mig.New(mig.Config{Layout: testLayout, Worker: 7},
		manualClock{Manual: clock.NewManual(t0), start: t0.UnixNano()}, mig.NewMemCeiling(mig.MaxTick))
	if err != nil {
		return nil, err
	}
	var opts []rpc.ServerOption
	if seq {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		node, err := startLocalSeqNode(ctx, onClose)
		if err != nil {
			return nil, err
		}
		opts = append(opts, rpc.WithSeq(node, 0))
	}
	srv, err := rpc.NewServer(&testIssuer{gen: gen, dc: "tokyo"}, opts...)
	if err != nil {
		return nil, err
	}
	ts := httptest.NewServer(srv.Handler())
	onClose(ts.Close)
	s.URL = ts.URL
	return s, nil
}

// startLocalSeqNode starts an embedded etcd and a sequence node on it,
// and waits until the node serves.
func startLocalSeqNode(ctx context.Context, onClose func(func())) (*seqfacade.Node, error) {
	dir, err := os.MkdirTemp("", "migclient-example-")
	if err != nil {
		return nil, err
	}
	onClose(func() { os.RemoveAll(dir) })
	e, err := etcdlocal.Start(ctx, etcdlocal.Config{Dir: dir})
	if err != nil {
		return nil, err
	}
	onClose(e.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	onClose(func() { cli.Close() })
	node, err := seqfacade.Start(ctx, seqfacade.Config{
		NodeName:        "n1",
		Lease:           lease.Config{TTL: 2 * time.Second, RequestTimeout: 200 * time.Millisecond},
		Margin:          100 * time.Millisecond,
		ActivationDelay: 500 * time.Millisecond,
	}, cli, clock.NewReal())
	if err != nil {
		return nil, err
	}
	onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		node.Close(ctx)
	})
	src := clock.NewReal()
	for node.Ready() != nil {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sequence node not serving: %w", errors.Join(node.Ready(), ctx.Err()))
		case <-src.After(10 * time.Millisecond):
		}
	}
	return node, nil
}
