package seqfacade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/lease"
)

// errSingleOwner means a single-node facade (Start without Routed) holds
// the owner key: it serves every group, so no table may be written.
var errSingleOwner = errors.New("seqfacade: a single-node facade serves every group; stop it before routing")

// errNotArbiter means the arbiter key is no longer this node's: another
// node arbitrates, or this node's lease ended.
var errNotArbiter = errors.New("seqfacade: no longer the arbiter")

// arbitrate campaigns for the arbiter role while the node is registered
// (until ctx is done) and, while it holds it, writes the routing table.
//
// The role is <prefix>/seq/arbiter, created if absent and bound to the
// node's lease: when the arbiter dies, its lease expires, the key goes,
// and another node takes the role. The key alone fences nothing (etcd
// locks are not fencing): every table write compares the key's
// CreateRevision with the one this node created.
func (o *routed) arbitrate(ctx context.Context, l *lease.Lease) {
	backoff := minRetry
	for ctx.Err() == nil {
		won, rev, err := o.campaign(ctx, l)
		switch {
		case err != nil:
			o.log.Debug("seq facade: arbiter campaign failed; retrying", "node", o.cfg.NodeName, "err", err)
			if clock.Sleep(ctx, o.src, backoff) != nil {
				return
			}
			backoff = min(2*backoff, maxRetry)
			continue
		case won:
			o.arbiter.Store(true)
			o.log.Info("seq facade: arbitrating the routing table", "node", o.cfg.NodeName, "revision", rev)
			err = o.lead(ctx, l, rev)
			o.arbiter.Store(false)
			if ctx.Err() == nil {
				o.log.Warn("seq facade: stopped arbitrating", "node", o.cfg.NodeName, "err", err)
			}
		default:
			o.awaitArbiter(ctx, rev)
		}
		backoff = minRetry
	}
}

// campaign creates the arbiter key if absent. It returns whether this
// node holds it with the key's CreateRevision, or else the revision of
// the holder's key to watch from.
func (o *routed) campaign(ctx context.Context, l *lease.Lease) (won bool, rev int64, err error) {
	cctx, cancel := l.CallContext(ctx)
	defer cancel()
	tr, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(o.keys.arbiter), "=", 0)).
		Then(clientv3.OpPut(o.keys.arbiter, o.cfg.NodeName, clientv3.WithLease(l.ID()))).
		Else(clientv3.OpGet(o.keys.arbiter)).
		Commit()
	if err != nil {
		return false, 0, err
	}
	if tr.Succeeded {
		return true, tr.Header.Revision, nil
	}
	kvs := tr.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return false, tr.Header.Revision, nil
	}
	if clientv3.LeaseID(kvs[0].Lease) == l.ID() {
		// An earlier attempt whose answer was lost did create it.
		return true, kvs[0].CreateRevision, nil
	}
	return false, tr.Header.Revision, nil
}

// awaitArbiter waits until the arbiter key may have gone: a delete seen
// by a watch from rev, a watch that fails, or a lease TTL without news
// (a watch can hang in a partition).
func (o *routed) awaitArbiter(ctx context.Context, rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := o.cli.Watch(wctx, o.keys.arbiter, clientv3.WithRev(rev+1))
	poll := o.src.After(o.cfg.Lease.TTL)
	for {
		select {
		case resp, ok := <-wch:
			if !ok || resp.Err() != nil {
				// Compacted, no leader or closed: campaign again after a
				// pause rather than spin.
				_ = clock.Sleep(ctx, o.src, minRetry)
				return
			}
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return
				}
			}
		case <-poll:
			return
		case <-ctx.Done():
			return
		}
	}
}

// cluster is what the arbiter reads in one transaction: the live
// registrations and the table.
type cluster struct {
	live    []Member
	members map[string]member
	tbl     *table // nil when none
	rev     int64  // the table's ModRevision; 0 when none
	read    int64  // the revision read at
	sole    bool   // a single-node owner key exists
}

// lead writes the routing table while this node holds the arbiter key
// created at revision arbRev: at once when a registration comes or goes
// (a dead node's groups go to the live ones), and rebalancing at most
// MaxMoves groups a round, rounds RebalanceInterval apart. It returns why
// it stopped.
func (o *routed) lead(ctx context.Context, l *lease.Lease, arbRev int64) error {
	var w nodesWatch // none until the first read
	defer func() { w.stop() }()
	// The first round may rebalance at once.
	lastRebalance := o.src.Mono() - o.cfg.RebalanceInterval
	backoff, failing := minRetry, false
	for ctx.Err() == nil {
		wait := o.cfg.RebalanceInterval
		c, err := o.readCluster(ctx, l, arbRev)
		pending := false
		if err == nil {
			pending, lastRebalance, err = o.plan(ctx, l, arbRev, c, lastRebalance)
			if w.ch == nil {
				w = o.watchNodes(ctx, c.read+1)
			}
		}
		switch {
		case errors.Is(err, errNotArbiter):
			return err
		case errors.Is(err, errSingleOwner):
			// Its registration goes with its owner key: the watch wakes
			// this loop then.
			if !failing {
				o.log.Warn("seq facade: arbiter waits for the single-node facade to stop", "node", o.cfg.NodeName, "err", err)
			}
			failing = true
		case err != nil:
			lvl := slog.LevelWarn
			if failing {
				lvl = slog.LevelDebug // the first failure of a streak says it all
			}
			o.log.Log(ctx, lvl, "seq facade: arbiter cannot read or write the routing table; retrying", "node", o.cfg.NodeName, "err", err, "retry_in", backoff)
			wait, backoff, failing = backoff, min(2*backoff, maxRetry), true
		default:
			backoff, failing = minRetry, false
			if pending {
				wait = max(lastRebalance+o.cfg.RebalanceInterval-o.src.Mono(), 0)
			}
		}
		select {
		case resp, ok := <-w.ch:
			if !ok || resp.Err() != nil {
				// Compacted, no leader or closed: the next read sees
				// everything, and the watch starts again from it.
				w.stop()
				w = nodesWatch{}
			}
		case <-o.src.After(wait):
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

// nodesWatch is a watch on the registrations; the zero value is none.
type nodesWatch struct {
	ch     clientv3.WatchChan
	cancel context.CancelFunc
}

func (o *routed) watchNodes(ctx context.Context, from int64) nodesWatch {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	return nodesWatch{ch: o.cli.Watch(wctx, o.keys.nodes, clientv3.WithPrefix(), clientv3.WithRev(from)), cancel: cancel}
}

func (w nodesWatch) stop() {
	if w.cancel != nil {
		w.cancel()
	}
}

// readCluster reads the registrations and the table in one linearizable
// transaction that also checks this node still holds the arbiter key.
func (o *routed) readCluster(ctx context.Context, l *lease.Lease, arbRev int64) (cluster, error) {
	cctx, cancel := l.CallContext(ctx)
	tr, err := o.cli.Txn(cctx).
		If(o.fence(arbRev)).
		Then(clientv3.OpGet(o.keys.nodes, clientv3.WithPrefix()),
			clientv3.OpGet(o.keys.routing),
			clientv3.OpGet(o.keys.owner, clientv3.WithCountOnly())).
		Commit()
	cancel()
	if err != nil {
		return cluster{}, fmt.Errorf("arbiter reading %s and %s: %w", o.keys.nodes, o.keys.routing, err)
	}
	if !tr.Succeeded {
		return cluster{}, errNotArbiter
	}
	c := cluster{members: map[string]member{}, read: tr.Header.Revision}
	for _, kv := range tr.Responses[0].GetResponseRange().Kvs {
		name := strings.TrimPrefix(string(kv.Key), o.keys.nodes)
		var r registration
		if err := json.Unmarshal(kv.Value, &r); err != nil || name == "" || strings.Contains(name, "/") {
			o.log.Warn("seq facade: arbiter skips an unreadable registration", "key", string(kv.Key), "err", err)
			continue
		}
		c.live = append(c.live, Member{Name: name, Weight: r.Weight})
		c.members[name] = member{Address: r.Address, Datacenter: r.Datacenter}
	}
	if kvs := tr.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		t, err := decodeTable(kvs[0].Value, kvs[0].ModRevision, o.lay)
		if err != nil {
			// An operator must repair it: writing over it could hand a
			// group to two nodes.
			return cluster{}, err
		}
		c.tbl, c.rev = t, t.rev
	}
	c.sole = tr.Responses[2].GetResponseRange().Count > 0
	return c, nil
}

// plan computes and writes the next table from c. It reports whether a
// rebalancing round is pending (due later), and when the last one ran.
func (o *routed) plan(ctx context.Context, l *lease.Lease, arbRev int64, c cluster, lastRebalance time.Duration) (pending bool, last time.Duration, err error) {
	last = lastRebalance
	if c.sole {
		return false, last, fmt.Errorf("%w: %s exists", errSingleOwner, o.keys.owner)
	}
	prev := RoutingTable{}
	if c.tbl != nil {
		prev = c.tbl.RoutingTable
	}
	// HAZARD: only members whose registration (bound to their lease) is
	// gone are absent from c.live; only their groups move without the
	// bound, and activation delays cover the rest (docs/seq-failover.md).
	next, moved := Plan(prev, o.lay.groups, c.live, PlanConfig{})
	if o.cfg.MaxMoves > 0 {
		if rb, rbMoved := Plan(prev, o.lay.groups, c.live, PlanConfig{MaxMoves: o.cfg.MaxMoves}); rbMoved > moved {
			now := o.src.Mono()
			if now < lastRebalance+o.cfg.RebalanceInterval {
				pending = true
			} else {
				next, moved, last = rb, rbMoved, now
			}
		}
	}
	members := c.members
	for _, owner := range next.Owners {
		if _, ok := members[owner]; !ok && owner != "" && c.tbl != nil {
			// An owner with no live registration keeps its address while
			// no live member can take its groups.
			members[owner] = c.tbl.members[owner]
		}
	}
	t, changed := nextTable(c.tbl, next.Owners, members, o.lay, uint64(c.read))
	if !changed {
		return pending, last, nil
	}
	cctx, cancel := l.CallContext(ctx)
	tr, err := o.cli.Txn(cctx).
		If(o.fence(arbRev),
			clientv3.Compare(clientv3.ModRevision(o.keys.routing), "=", c.rev),
			clientv3.Compare(clientv3.CreateRevision(o.keys.owner), "=", 0)).
		Then(clientv3.OpPut(o.keys.routing, string(t.encode()))).
		Else(clientv3.OpGet(o.keys.arbiter)).
		Commit()
	cancel()
	if err != nil {
		// The write may have happened: the next round reads again.
		return pending, last, fmt.Errorf("arbiter writing %s version %d: %w", o.keys.routing, t.Version, err)
	}
	if !tr.Succeeded {
		kvs := tr.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].CreateRevision != arbRev {
			return false, last, errNotArbiter
		}
		return pending, last, fmt.Errorf("arbiter writing %s version %d: the table or %s changed meanwhile", o.keys.routing, t.Version, o.keys.owner)
	}
	o.moves.Add(uint64(moved))
	o.log.Info("seq facade: routing table written", "node", o.cfg.NodeName, "version", t.Version, "moved", moved, "members", len(c.live))
	return pending, last, nil
}

// fence is the comparison that holds only while this node holds the
// arbiter key it created at revision arbRev.
func (o *routed) fence(arbRev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(o.keys.arbiter), "=", arbRev)
}
