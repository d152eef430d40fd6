package seqfacade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/seqfacade/route"
)

// Retry bounds, doubling from minRetry to maxRetry: for registering (a
// node waiting for a previous holder's keys to expire) and for a group's
// failed max_seq writes.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = time.Second
)

// Node hands out per-uid sequences for the groups it owns (the AllocSvr
// role), persisting max_seqs through a Store. It runs goroutines to load
// groups, write extensions and unload groups whose claim ends; Close
// stops them all. Safe for concurrent use.
type Node struct {
	cfg   Config
	lay   layout
	store Store
	own   Ownership
	src   clock.Source
	log   *slog.Logger

	// sections is the hot path's table: the loaded section of every
	// section number, nil when not loaded. groups likewise by group.
	sections []atomic.Pointer[section]
	groups   []atomic.Pointer[group]

	stats nodeCounters

	ctx    context.Context // the node's lifetime, for background calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node starts

	mu struct {
		sync.Mutex
		closed  bool
		loading map[int]*loadCall
		watched map[Claim]struct{}
		// last holds the unload of each group's latest installed
		// instance, for the release or the direct handoff (pulledState)
		// that hands its final state off (takeFinal).
		last map[int]*unloading
	}

	closeOwn func(context.Context) error
	drainOwn func(context.Context) error
	// takeFirstLoad returns, once a tenure, the state group g was handed
	// off in by its previous owner, or read in by a confirmation
	// (routeState.takeFirstLoad); neither for later loads.
	takeFirstLoad func(g int) firstLoad
	activating    chan struct{} // a slot per background activation in flight
	closeOnce     sync.Once
	closeErr      error
}

// loadCall is a group load in progress; callers that need the group wait
// on done.
type loadCall struct {
	done chan struct{}
	g    *group
	err  error
}

// Start records or checks the configuration in etcd, then starts a node
// that serves the groups the routing table gives it
// (docs/seq-failover.md): it registers under a lease, campaigns to be the
// arbiter that writes the table, activates each group given to it once
// its previous owner has released it or an activation delay after it
// first saw it given (loading it and raising every section's max_seq in
// one write, so that first calls do not wait on etcd), and unloads a
// group the moment it sees it moved. Calls for a group the table gives
// another node answer a *NotOwnerError carrying the table (Routing tells
// it too); calls for a group still activating wait for it (within their
// context); calls while the node cannot confirm the table answer
// ErrUnavailable.
//
// src keeps the claims' deadlines and is read once per call to check
// them (clock.Deadline).
//
// It returns an error wrapping ErrConfig for an invalid cfg, ErrMismatch
// when cfg disagrees with the configuration recorded in etcd, or
// ErrUnavailable (naming the endpoints) when etcd has not answered within
// cfg.StartTimeout.
func Start(ctx context.Context, cfg Config, cli *clientv3.Client, src clock.Source) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// etcd may be slow to answer a node that starts during a fault (a
	// cluster across sites electing a leader): try for StartTimeout.
	for backoff, end := minRetry, src.Mono()+cfg.StartTimeout; ; backoff = min(2*backoff, maxRetry) {
		err := checkMetadata(ctx, cli, cfg)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) || src.Mono()+backoff > end {
			return nil, err
		}
		cfg.Logger.Warn("seq facade: etcd did not answer; retrying", "endpoints", cli.Endpoints(), "err", err, "retry_in", backoff)
		if clock.Sleep(ctx, src, backoff) != nil {
			return nil, err
		}
	}
	return startOn(ctx, cfg, cli, newEtcdStore(cli, cfg), src)
}

// startOn is Start's node, once etcd's metadata agrees, over store.
func startOn(ctx context.Context, cfg Config, cli *clientv3.Client, store Store, src clock.Source) (*Node, error) {
	o := newRouted(cfg, cli, src)
	n, err := New(ctx, cfg, store, o, src)
	if err != nil {
		return nil, err
	}
	o.activate = n.activate
	o.calls = n.groupCalls
	o.handoff = n.handoffState
	o.pulledState = n.pulledState
	if ar, ok := store.(aheadReader); ok {
		o.ahead = ar
	}
	n.takeFirstLoad = o.st.takeFirstLoad
	o.start(ctx)
	n.closeOwn = o.close
	n.drainOwn = o.drain
	return n, nil
}

// New returns a node over any Store and Ownership: Start's parts, for
// tests and for other ownership schemes. The caller keeps ownership of
// store and own (Close does not close them). ctx's values, not its
// cancellation, are kept for the node's background calls. It returns an
// error wrapping ErrConfig for an invalid cfg.
func New(ctx context.Context, cfg Config, store Store, own Ownership, src clock.Source) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	lay := newLayout(cfg)
	n := &Node{
		cfg:      cfg,
		lay:      lay,
		store:    store,
		own:      own,
		src:      src,
		log:      cfg.Logger,
		sections: make([]atomic.Pointer[section], lay.sections),
		groups:   make([]atomic.Pointer[group], lay.groups),
	}
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	n.activating = make(chan struct{}, activations)
	n.mu.loading = map[int]*loadCall{}
	n.mu.watched = map[Claim]struct{}{}
	n.mu.last = map[int]*unloading{}
	n.takeFirstLoad = func(int) firstLoad { return firstLoad{} }
	return n, nil
}

// Config returns the node's configuration, defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// Ready says why the node cannot answer every call now, or nil when it
// can: registered, with a routing table (so that it serves its groups or
// sends callers to their owners), no group of its own still activating,
// and its right to serve confirmed. For readiness probes.
func (n *Node) Ready() error {
	n.mu.Lock()
	closed := n.mu.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return n.own.Ready()
}

// Drain hands this node's groups to the other nodes before it stops (a
// planned move, without a gap: each is released as soon as this node has
// stopped serving it, and its new owner serves at once). It returns when
// the node owns no group, when no other node could take them (nil then
// too: Close's path is as safe, only slower for the next owner), or when
// ctx is done. The node keeps answering meanwhile: calls for groups
// already handed off are sent on. Call it before Close, with the HTTP
// server still serving.
func (n *Node) Drain(ctx context.Context) error {
	if n.drainOwn == nil {
		return nil
	}
	err := n.drainOwn(ctx)
	if err != nil {
		n.log.Warn("seq facade: drain incomplete; the groups left move when the node's lease is revoked, after their activation delay", "err", err)
	}
	return err
}

// spawn runs f in a goroutine that Close waits for; it reports false, and
// runs nothing, once Close has begun.
func (n *Node) spawn(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// callCtx bounds one store call made under c: the request timeout, or
// the claim's deadline if sooner, and Close.
func (n *Node) callCtx(c Claim) (context.Context, context.CancelFunc) {
	return context.WithTimeout(n.ctx, max(0, min(n.cfg.RequestTimeout, c.Headroom())))
}

// group returns loaded group gi, loading it if needed. A group still
// activating on this node is waited for, within ctx.
func (n *Node) group(ctx context.Context, gi int) (*group, error) {
	for {
		if g := n.groups[gi].Load(); g != nil && !g.dead.Load() {
			return g, nil
		}
		c, err := n.startLoad(gi)
		var act *activatingError
		if errors.As(err, &act) {
			select {
			case <-act.wait:
				continue // activated (or moved away): ask again
			case <-ctx.Done():
				return nil, fmt.Errorf("%w (waited %w)", err, ctx.Err())
			}
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-c.done:
			return c.g, c.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for group %d to load: %w", ErrUnavailable, gi, ctx.Err())
		}
	}
}

// activations bounds the groups loaded at once in the background: a node
// given hundreds of groups at once (its first table) would otherwise hold
// hundreds of reads and writes at once, and the calls that need a group
// now would queue behind them. The store sends concurrent reads and
// writes together (txnBatcher): 32 cost etcd a few transactions a round
// trip. 128 at once loaded a failover's groups no sooner that a run could
// tell, and on a CI host under -race their writes timed out (each then of
// unknown outcome, its group read and written again).
const activations = 32

// activate loads group gi in the background, if it is not loaded or
// loading: the ownership calls it for a group it may now serve, so that
// it is loaded and its sections extended before calls need it.
func (n *Node) activate(gi int) {
	n.spawn(func() {
		for {
			err := n.activateOnce(gi)
			if err == nil || n.ctx.Err() != nil {
				return
			}
			// A load that failed (a timeout on a slow etcd, a right that
			// lapsed meanwhile) is tried again after a pause while the
			// group is still this node's: else it would wait for a call to
			// need it.
			if _, cerr := n.own.Claim(gi); errors.Is(cerr, ErrNotOwner) || errors.Is(cerr, ErrNotHome) || errors.Is(cerr, ErrClosed) {
				n.log.Debug("seq facade: group not activated", "group", gi, "err", err, "now", cerr)
				return
			}
			n.log.Debug("seq facade: group not activated; trying again", "group", gi, "err", err)
			if clock.Sleep(n.ctx, n.src, minRetry) != nil {
				return
			}
		}
	})
}

// activateOnce loads group gi, one of at most activations at once.
func (n *Node) activateOnce(gi int) error {
	select {
	case n.activating <- struct{}{}:
	case <-n.ctx.Done():
		return n.ctx.Err()
	}
	defer func() { <-n.activating }()
	c, err := n.startLoad(gi)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		return c.err
	case <-n.ctx.Done():
		return n.ctx.Err()
	}
}

// startLoad starts loading group gi unless it is loaded or loading, and
// returns the load to wait for.
func (n *Node) startLoad(gi int) (*loadCall, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
	}
	if g := n.groups[gi].Load(); g != nil && !g.dead.Load() {
		c := &loadCall{done: make(chan struct{}), g: g}
		close(c.done)
		return c, nil
	}
	if c := n.mu.loading[gi]; c != nil {
		return c, nil
	}
	// A group this node may not serve (another node's, or still
	// activating) is answered now, without a goroutine: with a routing
	// table, calls for other nodes' groups are common.
	if _, err := n.own.Claim(gi); err != nil {
		return nil, err
	}
	c := &loadCall{done: make(chan struct{})}
	n.mu.loading[gi] = c
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		g, err := n.loadGroup(gi)
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.mu.loading, gi)
		if err == nil && n.mu.closed {
			err = fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
		}
		if err == nil {
			// A new instance: the last one's final, set or to come, no
			// longer counts.
			g.unload = &unloading{g: g, done: make(chan struct{})}
			n.mu.last[gi] = g.unload
			n.groups[gi].Store(g)
			n.stats.groupsLoaded.Add(1)
			n.watchLocked(g.claim)
		}
		c.g, c.err = g, err
		close(c.done)
	}()
	return c, nil
}

// loadGroup reads group gi under a claim.
//
// HAZARD: the claim first, the read after. Ownership hands out a claim
// only once every write of a previous owner is visible to a read started
// then, so every cur_seq of the group starts at or above anything handed
// out before. The one read made earlier, by the confirmation that read
// the table beginning this tenure (routeState.readSeen), is as good: a
// previous owner's writes compare the table they were made under, so
// each that succeeded committed before that table and was read; a write
// since (a release, which compares only the group's revision) fails this
// load's first write, which expects the revision read, and nothing is
// served before that write succeeds.
func (n *Node) loadGroup(gi int) (*group, error) {
	c, err := n.own.Claim(gi)
	if err != nil {
		return nil, err
	}
	if c == nil || !reflect.TypeOf(c).Comparable() {
		return nil, fmt.Errorf("seqfacade: claim of type %T is not comparable", c)
	}
	// A group handed off by its previous owner comes with its state: no
	// read, and room already persisted (see routed.writeRelease). The
	// claim came first here too: the release it follows was written after
	// that owner's last value.
	first := n.takeFirstLoad(gi)
	if hs := first.handoff; hs != nil && len(hs.max) == n.lay.sectionsIn(gi) {
		if !live(c) {
			return nil, fmt.Errorf("%w: loading group %d: claim ended meanwhile", ErrUnavailable, gi)
		}
		g := n.newGroup(gi, c, GroupState{MaxSeqs: slices.Clone(hs.floor), Revision: hs.rev})
		g.mu.Lock()
		g.mu.persisted = slices.Clone(hs.max)
		g.mu.Unlock()
		n.stats.handoffs.Add(1)
		n.log.Debug("seq facade: group handed off", "group", gi, "revision", hs.rev)
		return g, nil
	}
	// A group read by the confirmation that began the tenure needs no
	// read of its own: extendAll writes only if the group is still as
	// read (see routeState.readSeen).
	var st GroupState
	if first.read != nil {
		st = *first.read
	} else {
		ctx, cancel := n.callCtx(c)
		st, err = n.store.Load(ctx, gi, nil)
		cancel()
	}
	n.stats.groupLoads.Add(1)
	switch {
	case errors.Is(err, ErrCorrupt):
		n.log.Error("seq facade: refusing to serve a group whose max_seqs are unreadable", "group", gi, "err", err)
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: loading group %d: %w", ErrUnavailable, gi, err)
	case len(st.MaxSeqs) != n.lay.sectionsIn(gi):
		return nil, fmt.Errorf("%w: group %d has %d sections in the store, want %d", ErrCorrupt, gi, len(st.MaxSeqs), n.lay.sectionsIn(gi))
	case !live(c):
		return nil, fmt.Errorf("%w: loading group %d: claim ended meanwhile", ErrUnavailable, gi)
	}
	g := n.newGroup(gi, c, st)
	// Every section of the group gets a step now, in one write: a uid
	// population spread over every section (how millions of users arrive)
	// then costs one write per group, not one per section, and first calls
	// do not wait on etcd. Untouched sections burn a step; 64 bits are
	// plenty.
	if err := g.extendAll(); err != nil {
		g.kill(err)
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: activating group %d: %w", ErrUnavailable, gi, err)
		}
		return nil, err
	}
	n.log.Debug("seq facade: group loaded", "group", gi, "revision", st.Revision)
	return g, nil
}

// watchLocked makes sure one goroutine unloads c's groups when c ends.
// A group installed after that goroutine has taken c out of watched gets
// a new one, which finds Done closed and unloads it at once.
func (n *Node) watchLocked(c Claim) {
	if _, ok := n.mu.watched[c]; ok {
		return
	}
	n.mu.watched[c] = struct{}{}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-c.Done():
		case <-n.ctx.Done():
			return
		}
		n.mu.Lock()
		delete(n.mu.watched, c)
		n.mu.Unlock()
		for i := range n.groups {
			if g := n.groups[i].Load(); g != nil && g.claim == c {
				g.kill(errors.New("claim ended"))
			}
		}
	}()
}

// handoffState returns group gi's state as this node last persisted and
// knows it, for the release of a tenure that ended: the group loaded
// under an ended claim (unloaded now) or just unloaded, with no write of
// unknown outcome pending; false otherwise (a group loaded under a live
// claim belongs to a later tenure, which a late release must not raise
// under it). Once: the release or the direct handoff takes it.
func (n *Node) handoffState(gi int) (GroupState, bool) {
	f, ok := n.takeFinal(gi, func(finalState) bool { return true })
	return f.GroupState, ok
}

// pulledState returns group gi as this node served it in tenure t, which
// has ended, for the node that asked for it directly (routed.handOff):
// each section's highest value handed out (floor), its persisted max_seq
// (max) and the group's revision. False when this node did not have the
// group loaded when t ended, or another state took it.
//
// HAZARD: only the last instance of the group, unloaded under t's own
// claim: an older one's values are not the highest this node handed
// out, and no etcd compare stands between this state and the values the
// next owner hands out from it.
func (n *Node) pulledState(gi int, t tenure) (*handoffState, bool) {
	f, ok := n.takeFinal(gi, func(f finalState) bool {
		c, isRouted := f.claim.(*routedClaim)
		return isRouted && c.t == t && len(f.served) == len(f.MaxSeqs)
	})
	if !ok {
		return nil, false
	}
	return &handoffState{floor: f.served, max: f.MaxSeqs, rev: f.Revision}, true
}

// takeFinal returns, and forgets, the final state of group gi's latest
// instance if accept takes it, once the instance's claim has ended: it
// unloads the instance if that is not done yet, and waits for an unload
// under way to record it. False when the latest instance's claim has not
// ended (a later tenure's, or one whose right lapsed and may be confirmed
// again), its final is not known, accept refuses it, or it was taken.
func (n *Node) takeFinal(gi int, accept func(finalState) bool) (finalState, bool) {
	n.mu.Lock()
	u := n.mu.last[gi]
	var g *group
	if u != nil {
		g = u.g
	}
	n.mu.Unlock()
	if u == nil {
		return finalState{}, false
	}
	if g != nil {
		select {
		case <-g.claim.Done():
		default:
			return finalState{}, false
		}
		g.kill(errors.New("claim ended"))
	}
	<-u.done
	select {
	case <-u.final.claim.Done():
	default:
		return finalState{}, false // unloaded under a live claim: its tenure goes on
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.last[gi] != u || u.taken || !u.ok || !accept(u.final) {
		return finalState{}, false
	}
	u.taken = true
	return u.final, true
}

// Routing returns the routing table the node serves by, to hand to
// clients whose version is older: Version 0 for a node that has not read
// a table yet (or whose Ownership has none). Share it read-only.
func (n *Node) Routing() route.Table {
	if r, ok := n.own.(interface{ routing() route.Table }); ok {
		return r.routing()
	}
	return route.Table{}
}

// GroupOf returns the group of uid: uid / SectionSize / GroupSize. It is
// the unit a routing table assigns.
func (n *Node) GroupOf(uid uint64) int { return int(uid / n.lay.sectionSize / uint64(n.lay.groupSize)) }

// Close stops serving at once, stops every goroutine of the node and, for
// a node from Start, records the release of the groups it served (so
// that their next owners, or this node's next start, serve them at once)
// and revokes its lease, so its groups go to the other nodes at once.
// Drain first hands them off while this node still answers. Close writes
// no max_seq: every max_seq is persisted before any value below it is
// handed out. Calls after Close get ErrClosed (wrapped with
// ErrUnavailable). Idempotent; it returns the revoke's error.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.mu.closed = true
		n.mu.Unlock()
		for i := range n.groups {
			if g := n.groups[i].Load(); g != nil {
				g.kill(ErrClosed)
			}
		}
		n.cancel()
		n.wg.Wait()
		if n.closeOwn != nil {
			n.closeErr = n.closeOwn(ctx)
		}
	})
	return n.closeErr
}
