// Package etcdprobe keeps an etcd client's calls off the members that do
// not answer.
//
// The etcd client spreads its calls over every endpoint it was given,
// round robin, and learns that a member went silent (cut off by a
// partition, its host frozen: no reset, no refusal) only when gRPC's
// keepalive gives up on the connection: 10 s or more, the least gRPC
// allows. Until then a share of the unary calls (reads, writes, lease
// renewals) waits out its timeout on that member. Across datacenters that
// is the member of a datacenter cut off from the others, and the calls
// are the ones that move its groups elsewhere.
//
// A [Prober] reads from each endpoint, on a client of its own, every
// interval (a linearizable read, as etcd's own health check does: only a
// member in touch with a quorum answers it), and gives the client only
// the endpoints that answered within the timeout; all of them when none
// did (the client then fails as it would have). An endpoint left out is
// asked again every interval and put back once it answers.
//
// Streams already open on a member left out (watches) stay on it until
// gRPC's keepalive closes the connection: the client's new calls avoid
// the member, its old streams do not. Whatever relies on a watch must
// not rely on it alone (a sequence node's confirmations do not).
package etcdprobe

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
)

// DefaultInterval is how often every endpoint is asked.
const DefaultInterval = 500 * time.Millisecond

// Prober keeps a client's endpoints to those that answer.
type Prober struct {
	cli       *clientv3.Client
	src       clock.Source
	log       *slog.Logger
	cfg       clientv3.Config    // cli's, for the probing clients
	endpoints []string           // all of them, as configured
	probes    []*clientv3.Client // one an endpoint, by index, made by probe
	every     time.Duration
	timeout   time.Duration

	cancel context.CancelFunc
	done   chan struct{}

	mu struct {
		sync.Mutex
		using []string // what the client was last given
	}
}

// Start probes the endpoints of cli, made from cfg, every interval
// (DefaultInterval if 0), each probe bounded by timeout (the interval if
// 0), until Stop. A client of one endpoint has nothing to choose from:
// Start returns nil then, and a nil Prober's methods do nothing. It does
// not wait for any endpoint.
func Start(cli *clientv3.Client, cfg clientv3.Config, src clock.Source, log *slog.Logger, interval, timeout time.Duration) *Prober {
	eps := slices.Clone(cli.Endpoints())
	if len(eps) < 2 {
		return nil
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	if timeout <= 0 {
		timeout = interval
	}
	p := &Prober{cli: cli, cfg: cfg, src: src, log: log, endpoints: eps, every: interval, timeout: timeout, done: make(chan struct{})}
	p.probes = make([]*clientv3.Client, len(eps))
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.mu.using = eps
	go p.run(ctx)
	return p
}

// probe returns the client that probes endpoint i, made on first use (in
// the prober's goroutine: with a user, making it waits for a token from
// the endpoint, which a silent member never gives), or nil if it cannot
// be made now.
func (p *Prober) probe(ctx context.Context, i int) *clientv3.Client {
	if p.probes[i] != nil {
		return p.probes[i]
	}
	c := p.cfg
	// The wait for a connection and a token bounded by the probe's
	// timeout, and by Stop.
	c.Endpoints, c.DialTimeout, c.Context = []string{p.endpoints[i]}, p.timeout, ctx
	pc, err := clientv3.New(c)
	if err != nil {
		return nil
	}
	p.probes[i] = pc
	return pc
}

func (p *Prober) closeProbes() {
	for _, pc := range p.probes {
		if pc != nil {
			_ = pc.Close()
		}
	}
}

// Stop stops probing and waits for the prober's goroutine; the client
// keeps the endpoints it was last given.
func (p *Prober) Stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
	p.closeProbes()
}

// Using returns the endpoints the client was last given.
func (p *Prober) Using() []string {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.mu.using)
}

func (p *Prober) run(ctx context.Context) {
	defer close(p.done)
	for ctx.Err() == nil {
		p.round(ctx)
		if clock.Sleep(ctx, p.src, p.every) != nil {
			return
		}
	}
}

// round asks every endpoint at once and gives the client those that
// answered.
func (p *Prober) round(ctx context.Context) {
	ok := make([]bool, len(p.endpoints))
	var wg sync.WaitGroup
	for i := range p.endpoints {
		wg.Go(func() {
			pc := p.probe(ctx, i)
			if pc == nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			_, err := pc.Get(cctx, "health")
			// Refused for want of permission: answered all the same.
			ok[i] = err == nil || errors.Is(err, rpctypes.ErrPermissionDenied)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	var healthy []string
	for i, ep := range p.endpoints {
		if ok[i] {
			healthy = append(healthy, ep)
		}
	}
	if len(healthy) == 0 {
		healthy = p.endpoints
	}
	p.mu.Lock()
	old := p.mu.using
	p.mu.using = healthy
	p.mu.Unlock()
	if slices.Equal(old, healthy) {
		return
	}
	p.cli.SetEndpoints(healthy...)
	for _, ep := range p.endpoints {
		was, is := slices.Contains(old, ep), slices.Contains(healthy, ep)
		switch {
		case was && !is:
			p.log.Warn("etcd endpoint does not answer (or knows no leader): calls avoid it until it does", "endpoint", ep, "using", healthy)
		case !was && is:
			p.log.Info("etcd endpoint answers again: calls use it", "endpoint", ep, "using", healthy)
		}
	}
}
