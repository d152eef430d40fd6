package seqfacade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/seqfacade/route"
)

// errRegistrationGone means a confirmation found the node's registration
// deleted or replaced: its lease is gone, or an operator removed the key.
var errRegistrationGone = errors.New("seqfacade: registration gone")

// routed is the Ownership of a node among several (Config.Routed): the
// groups the routing table gives it, under the rules of
// docs/seq-failover.md, which routeState applies.
//
// One goroutine registers <prefix>/seq/nodes/<name> under a lease (created
// only if absent, so two live processes cannot share a name) and, after
// every acknowledged renewal, confirms the routing table with one
// linearizable read that also checks the registration. While registered,
// a second goroutine watches the routing key so that moves are seen at
// once (unloading early is always safe, and activation counts from the
// first sighting), and a third campaigns to be the arbiter (arbiter.go).
// When the lease ends, every claim ends, the lease is revoked and the node
// registers again. close stops them all. Safe for concurrent use.
type routed struct {
	cfg  Config
	cli  *clientv3.Client
	src  clock.Source
	log  *slog.Logger
	lay  layout
	keys routeKeys
	st   *routeState

	registrations, losses, moves atomic.Uint64
	badTable                     atomic.Int64 // the revision of an unreadable table last logged
	arbiter                      atomic.Bool
	state                        atomic.Pointer[string] // why not registered, for errors and logs

	cancel   context.CancelFunc
	loopDone chan struct{}

	mu struct {
		sync.Mutex
		lease *lease.Lease // held now, if any; revoked by close
	}
}

var _ Ownership = (*routed)(nil)

// routeKeys are the etcd keys of a routed cluster.
type routeKeys struct {
	node    string // this node's registration
	nodes   string // every registration: a prefix
	routing string // the routing table
	arbiter string // the arbiter's name, bound to its lease
	owner   string // the single-node owner key, which excludes routing
}

func newRouteKeys(cfg Config) routeKeys {
	return routeKeys{
		node:    cfg.Prefix + "/seq/nodes/" + cfg.NodeName,
		nodes:   cfg.Prefix + "/seq/nodes/",
		routing: cfg.Prefix + "/seq/routing",
		arbiter: cfg.Prefix + "/seq/arbiter",
		owner:   cfg.Prefix + "/seq/owner",
	}
}

// startRouted starts registering in the background. The goroutines
// outlive ctx's deadline (not its values) until close.
func startRouted(ctx context.Context, cfg Config, cli *clientv3.Client, src clock.Source) *routed {
	lay := newLayout(cfg)
	keys := newRouteKeys(cfg)
	o := &routed{
		cfg:      cfg,
		cli:      cli,
		src:      src,
		log:      cfg.Logger,
		lay:      lay,
		keys:     keys,
		st:       newRouteState(cfg.NodeName, src, cfg.ActivationDelay, cfg.Lease.Margin, keys.routing, keys.node, lay.groups),
		loopDone: make(chan struct{}),
	}
	o.setState("registering")
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel = cancel
	go o.run(lctx)
	return o
}

// Claim implements Ownership. It returns a *NotOwnerError when the table
// gives g to another node.
func (o *routed) Claim(g int) (Claim, error) {
	c, err := o.st.claim(g)
	if err != nil && o.st.routing.Load().Version == 0 {
		err = fmt.Errorf("%w (%s)", err, *o.state.Load())
	}
	return c, err
}

// Ready implements Ownership: registered, with a routing table to serve
// from or to send callers on with.
func (o *routed) Ready() bool { return o.st.ready() }

func (o *routed) routing() route.Table { return *o.st.routing.Load() }

func (o *routed) counts() (registrations, losses uint64) {
	return o.registrations.Load(), o.losses.Load()
}

func (o *routed) routeStats() routeStats {
	owned, activating := o.st.counts()
	return routeStats{owned: owned, activating: activating, moves: o.moves.Load(), arbiter: o.arbiter.Load()}
}

// routeStats are a routed ownership's gauges and counters, for Stats.
type routeStats struct {
	owned, activating int
	moves             uint64
	arbiter           bool
}

func (o *routed) setState(s string) { o.state.Store(&s) }

// registered is a live registration: its lease and its key's
// CreateRevision.
type registered struct {
	l   *lease.Lease
	rev int64
}

func (o *routed) run(ctx context.Context) {
	defer close(o.loopDone)
	register := func(ctx context.Context) (registered, error) {
		l, rev, err := o.register(ctx)
		return registered{l, rev}, err
	}
	registerLoop(ctx, o.src, o.log, o.cfg.NodeName, o.setState, register, func(ctx context.Context, r registered) {
		why := o.serve(ctx, r.l, r.rev)
		o.st.end()
		if ctx.Err() != nil {
			return // close revokes the lease
		}
		o.losses.Add(1)
		o.setState(fmt.Sprintf("registration lost (%v); registering again", why))
		o.log.Warn("seq facade: registration lost: stopped serving", "node", o.cfg.NodeName, "err", why)
		o.drop(ctx, r.l)
	})
}

// register grants a lease and creates the node's registration under it,
// if absent. On failure it revokes the lease, which also deletes the key
// if a timed-out transaction did create it.
func (o *routed) register(ctx context.Context) (*lease.Lease, int64, error) {
	l, err := lease.Grant(ctx, o.cli, o.src, o.cfg.Lease)
	if err != nil {
		return nil, 0, err
	}
	o.mu.Lock()
	o.mu.lease = l
	o.mu.Unlock()
	val, _ := json.Marshal(registration{
		Node:       o.cfg.NodeName,
		Lease:      fmt.Sprintf("%x", int64(l.ID())),
		Address:    o.cfg.Address,
		Datacenter: o.cfg.Datacenter,
		Weight:     o.cfg.Weight,
	})
	cctx, cancel := l.CallContext(ctx)
	tr, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(o.keys.node), "=", 0)).
		Then(clientv3.OpPut(o.keys.node, string(val), clientv3.WithLease(l.ID()))).
		Else(clientv3.OpGet(o.keys.node)).
		Commit()
	cancel()
	switch {
	case err != nil:
		err = fmt.Errorf("registering %s: %w", o.keys.node, err)
	case !tr.Succeeded:
		var held []string
		for _, kv := range tr.Responses[0].GetResponseRange().Kvs {
			held = append(held, fmt.Sprintf("%q, lease %x", kv.Value, kv.Lease))
		}
		err = fmt.Errorf("%s is held by another process until it is released or its lease expires: %v", o.keys.node, held)
	}
	if err != nil {
		o.drop(ctx, l)
		return nil, 0, err
	}
	o.registrations.Add(1)
	o.log.Info("seq facade: registered for routing", "node", o.cfg.NodeName, "lease", fmt.Sprintf("%x", int64(l.ID())),
		"ttl", l.TTL(), "activation_delay", o.cfg.ActivationDelay, "address", o.cfg.Address)
	return l, tr.Header.Revision, nil
}

// serve runs one registration: it confirms the routing table after every
// renewal, with the watcher and the arbiter's campaign alongside, until
// the lease ends, the registration is gone or ctx is done. It returns
// why it stopped.
func (o *routed) serve(ctx context.Context, l *lease.Lease, reg int64) error {
	o.st.begin(reg)
	o.setState("registered")
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { o.watchRouting(sctx) })
	wg.Go(func() { o.arbitrate(sctx, l) })
	for {
		r, next := l.LastRenewal()
		err := o.confirm(sctx, l, reg, r)
		if errors.Is(err, errRegistrationGone) {
			return err
		}
		var retry <-chan struct{}
		if err != nil && sctx.Err() == nil {
			o.log.Debug("seq facade: cannot confirm the routing table; retrying", "node", o.cfg.NodeName, "err", err)
			// Any read sent after r.Sent still confirms from r.Sent.
			retry = o.src.After(minRetry)
		}
		select {
		case <-next:
		case <-retry:
		case <-l.Done():
			return l.Err()
		case <-sctx.Done():
			return sctx.Err()
		}
	}
}

// confirm reads the routing table after renewal r, in a transaction that
// also checks the registration, and lets routeState extend the node's
// right to serve the groups the table gives it.
//
// HAZARD: the read must be linearizable and sent after r was
// acknowledged (it is: LastRenewal returned r), and only r.Sent counts:
// see routeState.confirm.
func (o *routed) confirm(ctx context.Context, l *lease.Lease, reg int64, r lease.Renewal) error {
	cctx, cancel := l.CallContext(ctx)
	tr, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(o.keys.node), "=", reg)).
		Then(clientv3.OpGet(o.keys.routing)).
		Commit()
	cancel()
	now := o.src.Mono()
	switch {
	case err != nil:
		return fmt.Errorf("confirming %s: %w", o.keys.routing, err)
	case !tr.Succeeded:
		return fmt.Errorf("%w: %s no longer holds the registration made at revision %d", errRegistrationGone, o.keys.node, reg)
	}
	kvs := tr.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil // no table yet: nothing to serve
	}
	t, err := decodeTable(kvs[0].Value, kvs[0].ModRevision, o.lay)
	if err != nil {
		if o.badTable.Swap(kvs[0].ModRevision) != kvs[0].ModRevision {
			o.log.Error("seq facade: unreadable routing table; serving nothing until it is repaired", "key", o.keys.routing, "revision", kvs[0].ModRevision, "err", err)
		}
		return err
	}
	o.st.confirm(t, r, now)
	return nil
}

// watchRouting feeds routeState every table written, as soon as it is,
// until ctx is done. It only hastens: confirmations alone keep the node
// correct, so a watch that hangs in a partition costs nothing but speed.
func (o *routed) watchRouting(ctx context.Context) {
	for ctx.Err() == nil {
		rev, err := o.readRouting(ctx)
		if err == nil {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for resp := range o.cli.Watch(wctx, o.keys.routing, clientv3.WithRev(rev+1)) {
				if err = resp.Err(); err != nil {
					break // compacted, or no leader: read afresh and watch again
				}
				now := o.src.Mono()
				for _, ev := range resp.Events {
					if ev.Type != clientv3.EventTypePut {
						continue
					}
					if t, err := decodeTable(ev.Kv.Value, ev.Kv.ModRevision, o.lay); err == nil {
						o.st.observe(t, now)
					}
				}
			}
			cancel()
		}
		if ctx.Err() == nil {
			o.log.Debug("seq facade: routing watch ended; watching again", "node", o.cfg.NodeName, "err", err)
		}
		if clock.Sleep(ctx, o.src, minRetry) != nil {
			return
		}
	}
}

// readRouting reads the table, feeds it to routeState, and returns the
// revision read at.
func (o *routed) readRouting(ctx context.Context) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
	resp, err := o.cli.Get(cctx, o.keys.routing)
	cancel()
	if err != nil {
		return 0, err
	}
	now := o.src.Mono()
	if len(resp.Kvs) > 0 {
		t, err := decodeTable(resp.Kvs[0].Value, resp.Kvs[0].ModRevision, o.lay)
		if err != nil {
			return 0, err
		}
		o.st.observe(t, now)
	}
	return resp.Header.Revision, nil
}

func (o *routed) drop(ctx context.Context, l *lease.Lease) {
	o.mu.Lock()
	if o.mu.lease == l {
		o.mu.lease = nil
	}
	o.mu.Unlock()
	// Best effort: an unrevoked lease expires by itself.
	_ = l.Close(context.WithoutCancel(ctx))
}

// close stops the loops, ends every claim and revokes the lease held, if
// any, returning the revoke's error.
func (o *routed) close(ctx context.Context) error {
	o.cancel()
	<-o.loopDone
	o.st.close()
	o.setState("closed")
	o.mu.Lock()
	l := o.mu.lease
	o.mu.lease = nil
	o.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Close(ctx)
}
