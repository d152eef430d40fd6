package seqfacade

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/lease"
)

// sole is the Ownership of a single serving node: it owns every group.
//
// In one transaction it registers <prefix>/seq/nodes/<name> (what the
// multi-node version keeps) and claims <prefix>/seq/owner, both bound to
// one lease and both created only if absent. The owner key is what makes
// a second node, under another name, wait instead of serving the same
// uids: two servers of one uid would each hand out values from their own
// persisted range, and a client talking to both could read 201, then
// 10101, then 202. Registration alone would not prevent that.
//
// After registering it waits ActivationDelay before it serves, serves
// while the lease is surely held (its deadline is the send time of the
// last acknowledged renewal plus the TTL, minus the margin: see package
// lease), and when the lease ends it revokes it and registers again.
// One goroutine does all this; close stops it. Safe for concurrent use.
type sole struct {
	cfg        Config
	cli        *clientv3.Client
	src        clock.Source
	log        *slog.Logger
	nodeKey    string
	ownerKey   string
	routingKey string // must be absent: see register

	cur   atomic.Pointer[soleClaim] // the claim served under; nil while not serving
	state atomic.Pointer[string]    // why not serving, for error messages

	registrations, losses atomic.Uint64

	cancel   context.CancelFunc
	loopDone chan struct{}

	mu struct {
		sync.Mutex
		lease *lease.Lease // held now, if any; revoked by close
	}
}

var _ Ownership = (*sole)(nil)

// soleClaim is one registration: one lease, one pair of keys.
type soleClaim struct {
	l     *lease.Lease
	proof []clientv3.Cmp
}

var (
	_ Claim     = (*soleClaim)(nil)
	_ deadlined = (*soleClaim)(nil)
)

func (c *soleClaim) Proof() []clientv3.Cmp { return c.proof }
func (c *soleClaim) Done() <-chan struct{} { return c.l.Done() }

func (c *soleClaim) Headroom() time.Duration {
	select {
	case <-c.l.Done():
		return 0
	default:
	}
	return c.l.Headroom()
}

// deadline is the lease's: ended before the lease's Done closes, so its
// Live is the same answer as Headroom() > 0.
func (c *soleClaim) deadline() *clock.Deadline { return c.l.Fence() }

// registration is the value of <prefix>/seq/nodes/<name>. The routed
// fields are empty for a single node.
type registration struct {
	Node       string  `json:"node"`
	Lease      string  `json:"lease"`
	Address    string  `json:"address,omitempty"`
	Datacenter string  `json:"datacenter,omitempty"`
	Weight     float64 `json:"weight,omitempty"`
}

// startSole starts registering in the background. The goroutine outlives
// ctx's deadline (not its values) until close.
func startSole(ctx context.Context, cfg Config, cli *clientv3.Client, src clock.Source) *sole {
	o := &sole{
		cfg:        cfg,
		cli:        cli,
		src:        src,
		log:        cfg.Logger,
		nodeKey:    cfg.Prefix + "/seq/nodes/" + cfg.NodeName,
		ownerKey:   cfg.Prefix + "/seq/owner",
		routingKey: cfg.Prefix + "/seq/routing",
		loopDone:   make(chan struct{}),
	}
	o.setState("registering")
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel = cancel
	go o.run(lctx)
	return o
}

// Claim implements Ownership: every group is this node's while it serves.
func (o *sole) Claim(int) (Claim, error) {
	c := o.cur.Load()
	if c == nil || !live(c) {
		return nil, fmt.Errorf("%w: node %s is not serving: %s", ErrUnavailable, o.cfg.NodeName, *o.state.Load())
	}
	return c, nil
}

// Ready implements Ownership.
func (o *sole) Ready() bool {
	c := o.cur.Load()
	return c != nil && live(c)
}

func (o *sole) counts() (registrations, losses uint64) {
	return o.registrations.Load(), o.losses.Load()
}

func (o *sole) setState(s string) { o.state.Store(&s) }

func (o *sole) run(ctx context.Context) {
	defer close(o.loopDone)
	registerLoop(ctx, o.src, o.log, o.cfg.NodeName, o.setState, o.register, func(ctx context.Context, c *soleClaim) {
		o.serve(ctx, c)
		if ctx.Err() != nil {
			return // close revokes the lease
		}
		o.retire(ctx, c)
	})
}

// register grants a lease and creates the node and owner keys under it, if
// both are absent. On failure it revokes the lease, which also deletes the
// keys if a timed-out transaction did create them.
func (o *sole) register(ctx context.Context) (*soleClaim, error) {
	l, err := lease.Grant(ctx, o.cli, o.src, o.cfg.Lease)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.mu.lease = l
	o.mu.Unlock()
	val, _ := json.Marshal(registration{Node: o.cfg.NodeName, Lease: fmt.Sprintf("%x", int64(l.ID()))})
	cctx, cancel := l.CallContext(ctx)
	// HAZARD: never while a routing table exists: nodes routed by it may
	// be serving some groups, and this node would serve them all.
	tr, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(o.nodeKey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(o.ownerKey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(o.routingKey), "=", 0)).
		Then(clientv3.OpPut(o.nodeKey, string(val), clientv3.WithLease(l.ID())),
			clientv3.OpPut(o.ownerKey, o.cfg.NodeName, clientv3.WithLease(l.ID()))).
		Else(clientv3.OpGet(o.nodeKey), clientv3.OpGet(o.ownerKey), clientv3.OpGet(o.routingKey, clientv3.WithKeysOnly())).
		Commit()
	cancel()
	switch {
	case err != nil:
		err = fmt.Errorf("registering %s: %w", o.nodeKey, err)
	case !tr.Succeeded:
		err = o.heldBy(tr)
	}
	if err != nil {
		o.drop(ctx, l)
		return nil, err
	}
	rev := tr.Header.Revision // both keys' CreateRevision
	o.registrations.Add(1)
	o.log.Info("seq facade: registered", "node", o.cfg.NodeName, "lease", fmt.Sprintf("%x", int64(l.ID())),
		"ttl", l.TTL(), "activation_delay", o.cfg.ActivationDelay)
	return &soleClaim{l: l, proof: []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(o.nodeKey), "=", rev),
		clientv3.Compare(clientv3.CreateRevision(o.ownerKey), "=", rev),
	}}, nil
}

// heldBy explains a registration refused because a key exists.
func (o *sole) heldBy(tr *clientv3.TxnResponse) error {
	if len(tr.Responses[2].GetResponseRange().Kvs) > 0 {
		return fmt.Errorf("%s exists: the cluster routes sequences across nodes; run every node routed, or stop them all and delete it", o.routingKey)
	}
	var held []string
	for i, key := range []string{o.nodeKey, o.ownerKey} {
		for _, kv := range tr.Responses[i].GetResponseRange().Kvs {
			held = append(held, fmt.Sprintf("%s (%q, lease %x)", key, kv.Value, kv.Lease))
		}
	}
	return fmt.Errorf("held by another process until it is released or its lease expires: %v", held)
}

// serve waits out the activation delay, then publishes c until its lease
// ends or ctx is done.
func (o *sole) serve(ctx context.Context, c *soleClaim) {
	o.setState(fmt.Sprintf("registered, activating (%v after registration)", o.cfg.ActivationDelay))
	// HAZARD: serving before the delay would let this node hand out values
	// while a previous holder (an old incarnation that is partitioned, not
	// dead) might still be doing so within its own deadline.
	select {
	case <-ctx.Done():
		return
	case <-c.l.Done():
		o.lost(c)
		return
	case <-o.src.After(o.cfg.ActivationDelay):
	}
	o.cur.Store(c)
	o.log.Info("seq facade: serving sequences", "node", o.cfg.NodeName, "headroom", c.Headroom())
	select {
	case <-ctx.Done():
	case <-c.l.Done():
		o.lost(c)
	}
}

func (o *sole) lost(c *soleClaim) {
	o.cur.CompareAndSwap(c, nil)
	o.losses.Add(1)
	o.setState(fmt.Sprintf("lease lost (%v); registering again", c.l.Err()))
	o.log.Warn("seq facade: lease lost: stopped serving", "node", o.cfg.NodeName, "err", c.l.Err())
}

// retire revokes an ended claim's lease so its keys go at once rather than
// at the lease's expiry; the node has already stopped serving under it.
func (o *sole) retire(ctx context.Context, c *soleClaim) {
	o.cur.CompareAndSwap(c, nil)
	o.drop(ctx, c.l)
}

func (o *sole) drop(ctx context.Context, l *lease.Lease) {
	o.mu.Lock()
	if o.mu.lease == l {
		o.mu.lease = nil
	}
	o.mu.Unlock()
	// Best effort: an unrevoked lease expires by itself.
	_ = l.Close(context.WithoutCancel(ctx))
}

// close stops the loop, stops serving and revokes the lease held, if any,
// returning the revoke's error.
func (o *sole) close(ctx context.Context) error {
	o.cancel()
	<-o.loopDone
	o.cur.Store(nil)
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
