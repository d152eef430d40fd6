package etcdprobe_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/etcdprobe"
	"github.com/migsvc/mig/internal/faultproxy"
)

// TestSilentEndpointLeftOut: a client of two endpoints (two paths to one
// member), one of which goes silent (cut: no reset, no refusal). Without
// the prober a share of the calls waits out its timeout on it; with it,
// once a round has run, every call answers, and the endpoint is used again
// once it answers.
func TestSilentEndpointLeftOut(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	target := strings.TrimPrefix(srv.Endpoints()[0], "http://")
	var eps []string
	var proxies []*faultproxy.Proxy
	for range 2 {
		p, err := faultproxy.New(target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		proxies = append(proxies, p)
		eps = append(eps, "http://"+p.Addr())
	}
	cfg := clientv3.Config{Endpoints: eps}
	cli := etcdtest.Client(t, eps...)
	src := clock.NewReal()
	// Generous timeouts, for the reads and the probes: a loaded host
	// (-race, other packages' tests) must not pass for a silent member.
	timeouts := func() int {
		n := 0
		for range 20 {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			if _, err := cli.Get(ctx, "k"); err != nil {
				n++
			}
			cancel()
		}
		return n
	}
	if n := timeouts(); n != 0 {
		t.Fatalf("%d of 20 reads failed before any cut", n)
	}
	proxies[1].Cut()
	if n := timeouts(); n == 0 {
		t.Fatal("no read waited on the silent endpoint: the test shows nothing")
	}

	p := etcdprobe.Start(cli, cfg, src, slog.New(slog.NewTextHandler(io.Discard, nil)), 100*time.Millisecond, 500*time.Millisecond)
	defer p.Stop()
	waitFor(t, "the silent endpoint left out", func() bool { return slices.Equal(p.Using(), eps[:1]) })
	if n := timeouts(); n != 0 {
		t.Errorf("%d of 20 reads failed with the silent endpoint left out", n)
	}
	proxies[1].Restore()
	waitFor(t, "the endpoint used again", func() bool { return slices.Equal(p.Using(), eps) })
	if got := cli.Endpoints(); !slices.Equal(got, eps) {
		t.Errorf("client endpoints %v, want %v", got, eps)
	}
}

// TestOneEndpointNoProber: nothing to choose from, nothing started.
func TestOneEndpointNoProber(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	p := etcdprobe.Start(cli, clientv3.Config{Endpoints: srv.Endpoints()}, clock.NewReal(), slog.Default(), 0, 0)
	if p != nil {
		t.Fatalf("Start with one endpoint: %v, want nil", p)
	}
	p.Stop() // a nil Prober does nothing
}

// TestSilentEndpointWithUser: with a user configured, a client waits for
// a token from its endpoint when it is made, which a silent member never
// gives: Start must not wait for it, nor Stop hang, and the endpoint that
// answers is probed all the same.
func TestSilentEndpointWithUser(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	target := strings.TrimPrefix(srv.Endpoints()[0], "http://")
	var eps []string
	for k := range 2 {
		p, err := faultproxy.New(target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		if k == 1 {
			p.Cut()
		}
		eps = append(eps, "http://"+p.Addr())
	}
	cli := etcdtest.Client(t, eps[0])
	cli.SetEndpoints(eps...)
	cfg := clientv3.Config{Endpoints: eps, Username: "mig", Password: "secret"}
	done := make(chan *etcdprobe.Prober)
	go func() {
		done <- etcdprobe.Start(cli, cfg, clock.NewReal(), slog.New(slog.NewTextHandler(io.Discard, nil)), 100*time.Millisecond, 200*time.Millisecond)
	}()
	var p *etcdprobe.Prober
	select {
	case p = <-done:
	case <-clock.NewReal().After(5 * time.Second):
		t.Fatal("Start waited on the silent endpoint")
	}
	waitFor(t, "the silent endpoint left out", func() bool { return slices.Equal(p.Using(), eps[:1]) })
	stopped := make(chan struct{})
	go func() { p.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-clock.NewReal().After(5 * time.Second):
		t.Fatal("Stop hung")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	src := clock.NewReal()
	for end := src.Mono() + 10*time.Second; !cond(); <-src.After(20 * time.Millisecond) {
		if src.Mono() > end {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}
