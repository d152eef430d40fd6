package seqfacade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/seqfacade/route"
)

// errRegistrationGone means a confirmation found the node's registration
// deleted or replaced: its lease is gone, or an operator removed the key.
var errRegistrationGone = errors.New("seqfacade: registration gone")

// routed is a node's Ownership: the groups the routing table gives it,
// under the rules of docs/seq-failover.md, which routeState applies.
//
// One goroutine registers <prefix>/seq/nodes/<name> under a lease
// (created only if absent, so two live processes cannot share a name).
// While registered, goroutines confirm the routing table every
// ConfirmInterval (one linearizable read that also checks the
// registration), watch the table and the release markers so that moves
// and handoffs are seen at once, campaign to be the arbiter
// (arbiter.go), and do the node's errands: activate the groups that may
// be (so that they are loaded and extended before calls need them),
// release the tenures it ended, report its load. When the lease ends,
// every claim ends, the lease is revoked and the node registers again.
// close stops them all. Safe for concurrent use.
type routed struct {
	cfg  Config
	cli  *clientv3.Client
	src  clock.Source
	log  *slog.Logger
	lay  layout
	keys routeKeys
	st   *routeState
	q    *quiet // when other nodes last confirmed, for the arbiter

	// activate loads group g in the background; calls returns each loaded
	// group's calls so far; handoff returns group g's state as this node
	// last persisted it, if it had the group loaded and knows it. All are
	// the node's, set before run starts.
	activate func(g int)
	calls    func() map[int]uint64
	handoff  func(g int) (GroupState, bool)
	// pulledState returns group g as this node served it in tenure t, for
	// a direct handoff (Node.pulledState).
	pulledState func(g int, t tenure) (*handoffState, bool)
	// ahead reads groups in a confirmation for their first loads
	// (routeState.readSeen): the node's store, when it is etcd's; nil
	// otherwise.
	ahead aheadReader

	registrations, losses atomic.Uint64
	resumes               atomic.Uint64 // leases resumed after their deadline
	badTable              atomic.Int64  // the revision of an unreadable table last logged
	arbiter               atomic.Bool
	draining              atomic.Bool
	state                 atomic.Pointer[string] // why not registered, for errors and logs
	load                  atomic.Uint64          // calls a second at the last report (float64 bits)
	kick                  chan struct{}          // wakes the errands
	confirmNow            chan struct{}          // asks for a confirmation at once
	pullNow               chan struct{}          // asks previous owners for releases (pulls)
	// Direct handoffs (handoff.go): releases answered to next owners,
	// releases taken from previous owners, and asks that failed.
	handedOff, pulledReleases, pullFailures atomic.Uint64
	moves                                   moveCounts

	cancel   context.CancelFunc
	loopDone chan struct{}

	// releasing is held by whoever writes releases (the errands, drain,
	// close): a caller that must know every release written (drain, before
	// the process stops) waits for writes already in flight, instead of
	// finding the queue empty while they are not done.
	releasing sync.Mutex

	mu struct {
		sync.Mutex
		lease *lease.Lease // held now, if any; revoked by close
		reg   int64        // its registration's CreateRevision
	}
}

var _ Ownership = (*routed)(nil)

// routeKeys are the etcd keys of the sequence nodes.
type routeKeys struct {
	node     string // this node's registration
	nodes    string // every registration: a prefix
	routing  string // the routing table
	written  string // the version of the table an arbiter last wrote
	arbiter  string // the arbiter's name, bound to its lease
	released string // release markers, by group: a prefix
	confirm  string // put by this node's every confirmation
	confirms string // every node's confirm key: a prefix
	load     string // this node's load report
	loads    string // every load report: a prefix
}

func newRouteKeys(cfg Config) routeKeys {
	p := cfg.Prefix + "/seq/"
	return routeKeys{
		node:     p + "nodes/" + cfg.NodeName,
		nodes:    p + "nodes/",
		routing:  p + "routing",
		written:  p + "routing-written",
		arbiter:  p + "arbiter",
		released: p + "released/",
		confirm:  p + "confirmed/" + cfg.NodeName,
		confirms: p + "confirmed/",
		load:     p + "load/" + cfg.NodeName,
		loads:    p + "load/",
	}
}

func releasedKey(prefix string, g int) string { return fmt.Sprintf("%s%08x", prefix, g) }

// registration is the value of <prefix>/seq/nodes/<name>.
type registration struct {
	Node       string  `json:"node"`
	Lease      string  `json:"lease"`
	Address    string  `json:"address,omitempty"`
	Datacenter string  `json:"datacenter,omitempty"`
	Weight     float64 `json:"weight,omitempty"`
	// Draining: the node is leaving; its groups are to be handed off.
	Draining bool `json:"draining,omitempty"`
}

// loadRecord is the value of <prefix>/seq/load/<name>: the node's calls
// a second by group, over the last report interval.
type loadRecord struct {
	Groups map[string]float64 `json:"groups"`
}

// newRouted returns the ownership of a node; run starts it.
func newRouted(cfg Config, cli *clientv3.Client, src clock.Source) *routed {
	lay := newLayout(cfg)
	keys := newRouteKeys(cfg)
	o := &routed{
		cfg:         cfg,
		cli:         cli,
		src:         src,
		log:         cfg.Logger,
		lay:         lay,
		keys:        keys,
		st:          newRouteState(cfg, src, keys, lay.groups),
		q:           newQuiet(cfg.ActivationDelay, cfg.ConfirmInterval, cfg.RequestTimeout),
		kick:        make(chan struct{}, 1),
		confirmNow:  make(chan struct{}, 1),
		pullNow:     make(chan struct{}, 1),
		loopDone:    make(chan struct{}),
		activate:    func(int) {},
		calls:       func() map[int]uint64 { return nil },
		handoff:     func(int) (GroupState, bool) { return GroupState{}, false },
		pulledState: func(int, tenure) (*handoffState, bool) { return nil, false },
	}
	o.st.changed = func() { poke(o.kick) }
	o.setState("registering")
	return o
}

// start starts registering in the background. The goroutines outlive
// ctx's deadline (not its values) until close.
func (o *routed) start(ctx context.Context) {
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel = cancel
	go o.run(lctx)
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Claim implements Ownership. It returns a *NotOwnerError when the table
// gives g to another node.
func (o *routed) Claim(g int) (Claim, error) {
	c, err := o.st.claimFor(g)
	if err != nil && o.st.routing.Load().Version == 0 {
		err = fmt.Errorf("%w (%s)", err, *o.state.Load())
	}
	return c, err
}

// Ready implements Ownership: registered, with a routing table, no group
// activating and the table confirmed.
func (o *routed) Ready() error {
	if err := o.st.ready(); err != nil {
		if s := *o.state.Load(); s != "registered" {
			return fmt.Errorf("%w (%s)", err, s)
		}
		return err
	}
	return nil
}

func (o *routed) routing() route.Table { return *o.st.routing.Load() }

func (o *routed) setState(s string) { o.state.Store(&s) }

func (o *routed) run(ctx context.Context) {
	defer close(o.loopDone)
	backoff, failures := minRetry, 0
	for ctx.Err() == nil {
		l, reg, err := o.register(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			lvl := slog.LevelWarn
			if failures > 0 {
				lvl = slog.LevelDebug // the first failure of a streak says it all
			}
			failures++
			o.setState(err.Error())
			o.log.Log(ctx, lvl, "seq facade: cannot register yet; retrying", "node", o.cfg.NodeName, "err", err, "retry_in", backoff)
			if clock.Sleep(ctx, o.src, backoff) != nil {
				return
			}
			backoff = min(2*backoff, maxRetry)
			continue
		}
		backoff, failures = minRetry, 0
		why := o.serve(ctx, l, reg, false)
		for errors.Is(why, lease.ErrExpired) && ctx.Err() == nil {
			// The deadline passed without a renewal: often an election
			// (no leader answers renewals, and the new one lengthens every
			// lease), not a lost lease. Keep the registration, and its
			// groups without an activation delay, if etcd still has it.
			o.st.suspend()
			o.setState("lease deadline passed; resuming it")
			o.log.Warn("seq facade: lease passed its deadline without a renewal: stopped serving; resuming it if etcd still holds it", "node", o.cfg.NodeName)
			nl, err := o.resume(ctx, l)
			if err != nil {
				why = fmt.Errorf("%w (%w)", why, err)
				break
			}
			l = nl
			o.resumes.Add(1)
			o.log.Info("seq facade: lease resumed: serving the same registration again", "node", o.cfg.NodeName, "lease", fmt.Sprintf("%x", int64(l.ID())))
			o.st.resume()
			why = o.serve(ctx, l, reg, true)
		}
		o.st.end()
		o.writeReleases(context.WithoutCancel(ctx), 2*o.cfg.RequestTimeout, true)
		if ctx.Err() != nil {
			return // close revokes the lease
		}
		o.losses.Add(1)
		o.setState(fmt.Sprintf("registration lost (%v); registering again", why))
		o.log.Warn("seq facade: registration lost: stopped serving", "node", o.cfg.NodeName, "err", why)
		o.drop(ctx, l)
	}
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
	cctx, cancel := l.CallContext(ctx)
	tr, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(o.keys.node), "=", 0)).
		Then(clientv3.OpPut(o.keys.node, o.registrationValue(l), clientv3.WithLease(l.ID()))).
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
	o.log.Info("seq facade: registered", "node", o.cfg.NodeName, "datacenter", o.cfg.Datacenter,
		"lease", fmt.Sprintf("%x", int64(l.ID())), "ttl_granted", l.TTL(), "activation_delay", o.cfg.ActivationDelay, "address", o.cfg.Address)
	if l.TTL() > o.cfg.Lease.TTL {
		o.log.Info("seq facade: etcd granted a longer lease than asked for (its minimum is 1.5 election timeouts): a dead node's groups move that much later",
			"node", o.cfg.NodeName, "asked", o.cfg.Lease.TTL, "granted", l.TTL())
	}
	return l, tr.Header.Revision, nil
}

func (o *routed) registrationValue(l *lease.Lease) string {
	val, _ := json.Marshal(registration{
		Node:       o.cfg.NodeName,
		Lease:      fmt.Sprintf("%x", int64(l.ID())),
		Address:    o.cfg.Address,
		Datacenter: o.cfg.Datacenter,
		Weight:     o.cfg.Weight,
		Draining:   o.draining.Load(),
	})
	return string(val)
}

// resume renews lease l, whose deadline passed, until etcd answers: a
// lease it still holds is kept alive again (lease.Resume), one it does
// not (expired, revoked) is an error wrapping lease.ErrGone. Tried every
// minRetry for at most the lease's TTL: a link on which requests arrive
// but answers come back too late renews the lease in etcd every time
// without the node ever learning it, and the node would hold its groups
// (and the arbiter's role), unserved, for as long as it tried. Given up,
// the caller revokes the lease, as before resuming existed.
func (o *routed) resume(ctx context.Context, l *lease.Lease) (*lease.Lease, error) {
	for end := o.src.Mono() + l.TTL(); ; {
		if o.src.Mono() >= end {
			return nil, fmt.Errorf("lease %x not resumed within its TTL (%v)", int64(l.ID()), l.TTL())
		}
		nl, err := lease.Resume(ctx, o.cli, o.src, o.cfg.Lease, l.ID())
		switch {
		case err == nil:
			o.mu.Lock()
			o.mu.lease = nl
			o.mu.Unlock()
			return nl, nil
		case errors.Is(err, lease.ErrGone):
			return nil, err
		}
		o.log.Debug("seq facade: cannot resume the lease yet; retrying", "node", o.cfg.NodeName, "err", err)
		if clock.Sleep(ctx, o.src, minRetry) != nil {
			return nil, ctx.Err()
		}
	}
}

// serve runs one registration until the lease ends, the registration is
// gone or ctx is done, and returns why it stopped. resumed: the same
// registration as before, its lease resumed (routeState keeps its
// tenures).
func (o *routed) serve(ctx context.Context, l *lease.Lease, reg int64, resumed bool) error {
	o.mu.Lock()
	o.mu.reg = reg
	o.mu.Unlock()
	if !resumed {
		o.st.begin(reg)
	}
	o.setState("registered")
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { o.watchRouting(sctx) })
	wg.Go(func() { o.watchReleased(sctx) })
	wg.Go(func() { o.watchConfirms(sctx) })
	wg.Go(func() { o.arbitrate(sctx, l) })
	wg.Go(func() { o.errands(sctx, l) })
	if o.cfg.HandOff != nil {
		wg.Go(func() { o.pulls(sctx) })
	}
	if o.draining.Load() {
		_ = o.markDraining(sctx, l, reg) // re-registered while leaving
	}
	every := o.cfg.ConfirmInterval
	for {
		err := o.confirm(sctx, l, reg)
		if errors.Is(err, errRegistrationGone) {
			return err
		}
		wait := every
		if err != nil && sctx.Err() == nil {
			o.log.Debug("seq facade: cannot confirm the routing table; retrying", "node", o.cfg.NodeName, "err", err)
			wait = min(every, minRetry)
		}
		select {
		case <-o.src.After(wait):
		case <-o.confirmNow:
		case <-l.Done():
			return l.Err()
		case <-sctx.Done():
			return sctx.Err()
		}
	}
}

// confirm reads the routing table, in a transaction that also checks the
// registration and puts the node's confirm key, and lets routeState
// extend the node's right to serve the groups the table gives it. While
// some group waits for a release marker, it reads those too.
//
// HAZARD: the read must be linearizable (etcd's default) and only its
// send time counts: see routeState.confirm. And no right without the put
// in the same transaction: the arbiter takes a node whose confirm key has
// not changed for the activation delay to have no right left (quiet.go).
func (o *routed) confirm(ctx context.Context, l *lease.Lease, reg int64) error {
	ops := []clientv3.Op{clientv3.OpGet(o.keys.routing)}
	markers := o.st.waiting()
	if markers {
		ops = append(ops, clientv3.OpGet(o.keys.released, clientv3.WithPrefix()))
	}
	ops = append(ops, clientv3.OpPut(o.keys.confirm, strconv.FormatInt(reg, 10)))
	// Groups newly given are read here too, in runs: their first loads
	// then write at once, a round trip sooner (routeState.readSeen).
	var runs [][2]int
	if o.ahead != nil {
		runs = groupRuns(o.st.toRead(), o.lay)
	}
	reads := len(ops)
	if len(runs) > 0 {
		ops = append(ops, o.ahead.aheadOps(runs)...)
	}
	cctx, cancel := l.CallContext(ctx)
	type read struct {
		sent time.Duration
		tr   *clientv3.TxnResponse
	}
	// Hedged: a confirmation is safe to send twice (its put only records
	// that it was processed), and each answer counts from its own send.
	rd, err := lease.Hedged(cctx, o.src, o.cfg.RequestTimeout/3, func(ctx context.Context) (read, error) {
		sent := o.src.Mono()
		tr, err := o.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(o.keys.node), "=", reg)).
			Then(ops...).
			Commit()
		return read{sent, tr}, err
	})
	cancel()
	now := o.src.Mono()
	sent, tr := rd.sent, rd.tr
	switch {
	case err != nil:
		return fmt.Errorf("confirming %s: %w", o.keys.routing, err)
	case !tr.Succeeded:
		return fmt.Errorf("%w: %s no longer holds the registration made at revision %d", errRegistrationGone, o.keys.node, reg)
	}
	o.q.selfConfirmed(now)
	if markers {
		o.st.releasedSeen(o.parseReleased(tr.Responses[1].GetResponseRange().Kvs))
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
	o.q.tableSeen(t.Version, now)
	o.st.confirm(t, sent, now)
	poke(o.pullNow)
	if len(runs) > 0 {
		o.st.readSeen(t, o.ahead.aheadStates(runs, tr.Responses[reads:]))
	}
	return nil
}

// Bounds on the groups one confirmation reads: a node given hundreds at
// once (its first table) reads the rest by their own loads.
const (
	confirmReadGroups   = 128
	confirmReadRuns     = 8
	confirmReadSections = 16 << 10 // about 128 KiB of values
)

// groupRuns returns groups (ascending) as runs of consecutive groups,
// [first, last] each, at most confirmReadRuns runs, confirmReadGroups
// groups and confirmReadSections sections in all.
func groupRuns(groups []int, lay layout) [][2]int {
	var runs [][2]int
	n, secs := 0, 0
	for _, g := range groups {
		secs += lay.sectionsIn(g)
		if n == confirmReadGroups || (n > 0 && secs > confirmReadSections) {
			break
		}
		if k := len(runs) - 1; k >= 0 && runs[k][1] == g-1 {
			runs[k][1] = g
		} else if len(runs) == confirmReadRuns {
			break
		} else {
			runs = append(runs, [2]int{g, g})
		}
		n++
	}
	return runs
}

// watchRouting feeds routeState every table written, as soon as it is,
// until ctx is done. It only hastens: confirmations alone keep the node
// correct, so a watch that hangs in a partition costs nothing but speed.
// Each new table asks for a confirmation at once, so that a group newly
// given is confirmed without waiting for the next round.
func (o *routed) watchRouting(ctx context.Context) {
	o.watch(ctx, o.keys.routing, false, func(kvs []*mvccpb.KeyValue) {
		now := o.src.Mono()
		for _, kv := range kvs {
			if t, err := decodeTable(kv.Value, kv.ModRevision, o.lay); err == nil {
				o.q.tableSeen(t.Version, now)
				o.st.observe(t, now)
			}
		}
		poke(o.confirmNow)
		poke(o.pullNow)
	})
}

// watchReleased feeds routeState the release markers, as soon as they
// are written.
func (o *routed) watchReleased(ctx context.Context) {
	o.watch(ctx, o.keys.released, true, func(kvs []*mvccpb.KeyValue) {
		o.st.releasedSeen(o.parseReleased(kvs))
	})
}

// watchConfirms tells quiet of every node's confirmations as soon as
// they are put. Watched by every node, since the arbiter role may come to
// any: a new arbiter then knows how long the nodes of a datacenter that
// died with the old one have been silent.
func (o *routed) watchConfirms(ctx context.Context) {
	o.watch(ctx, o.keys.confirms, true, func(kvs []*mvccpb.KeyValue) {
		now := o.src.Mono()
		for _, kv := range kvs {
			o.q.confirmSeen(strings.TrimPrefix(string(kv.Key), o.keys.confirms), confirmOf(kv), now)
		}
	})
}

// confirmOf reads a confirm key: its ModRevision and the registration
// whose confirmation put it (0 when unreadable: it vouches for nothing).
func confirmOf(kv *mvccpb.KeyValue) confirmRead {
	reg, _ := strconv.ParseInt(string(kv.Value), 10, 64)
	return confirmRead{rev: kv.ModRevision, reg: reg}
}

// watch reads key (or the prefix) and then watches it, handing every
// value read or put to f, until ctx is done; it reads afresh and watches
// again after a compaction, a lost leader or a closed watch.
func (o *routed) watch(ctx context.Context, key string, prefix bool, f func([]*mvccpb.KeyValue)) {
	var opts []clientv3.OpOption
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
		resp, err := o.cli.Get(cctx, key, opts...)
		cancel()
		if err == nil {
			f(resp.Kvs)
			var kvs []*mvccpb.KeyValue
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for wr := range o.cli.Watch(wctx, key, append(opts, clientv3.WithRev(resp.Header.Revision+1))...) {
				if err = wr.Err(); err != nil {
					break // compacted, or no leader: read afresh and watch again
				}
				kvs = kvs[:0]
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypePut {
						kvs = append(kvs, ev.Kv)
					}
				}
				if len(kvs) > 0 {
					f(kvs)
				}
			}
			cancel()
		}
		if ctx.Err() == nil {
			o.log.Debug("seq facade: watch ended; watching again", "node", o.cfg.NodeName, "key", key, "err", err)
		}
		if clock.Sleep(ctx, o.src, minRetry) != nil {
			return
		}
	}
}

// releaseRecord is the value of <prefix>/seq/released/<group>: the
// tenure released and, when its owner had the group loaded, the group as
// it left it (a handoff): Floor, each section's max_seq the owner served
// up to at most, and Max, the max_seq it persisted above that in the same
// transaction, so that the next owner serves at once, with room, without
// a read or a write of its own. The group key's revision is the release
// key's ModRevision (one transaction wrote both).
type releaseRecord struct {
	tenure
	Floor []uint64 `json:"floor,omitempty"`
	Max   []uint64 `json:"max,omitempty"`
}

// parseReleased reads release markers, skipping unreadable ones (a
// marker only hastens: without it the new owner waits its delay).
func (o *routed) parseReleased(kvs []*mvccpb.KeyValue) map[int]released {
	out := make(map[int]released, len(kvs))
	for _, kv := range kvs {
		g, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), o.keys.released), 16, 31)
		var r releaseRecord
		if err != nil || json.Unmarshal(kv.Value, &r) != nil || int(g) >= o.lay.groups {
			continue
		}
		rel := released{t: r.tenure}
		if n := o.lay.sectionsIn(int(g)); len(r.Floor) == n && len(r.Max) == n {
			rel.state = &handoffState{floor: r.Floor, max: r.Max, rev: kv.ModRevision}
			for i := range n {
				if r.Floor[i] > r.Max[i] || r.Max[i] > MaxSeq {
					rel.state = nil // unreadable: the next owner reads the group itself
					break
				}
			}
		}
		out[int(g)] = rel
	}
	return out
}

// errands activates the groups that may be, releases the tenures the node
// ended, and reports its load, until ctx is done.
func (o *routed) errands(ctx context.Context, l *lease.Lease) {
	report := max(o.cfg.RebalanceInterval/2, time.Second)
	nextReport := o.src.Mono() + report
	var last map[int]uint64
	lastAt := o.src.Mono()
	for ctx.Err() == nil {
		groups, next := o.st.activatable()
		for _, g := range groups {
			o.activate(g)
		}
		written, held := o.writeReleases(ctx, o.cfg.RequestTimeout, false)
		if !written {
			next = o.src.Mono() + minRetry // try again soon
		}
		if held != 0 && (next == 0 || held < next) {
			next = held
		}
		if now := o.src.Mono(); now >= nextReport {
			last, lastAt = o.reportLoad(ctx, l, last, lastAt, now)
			nextReport = now + report
		}
		wait := nextReport - o.src.Mono()
		if next != 0 {
			wait = min(wait, next-o.src.Mono())
		}
		select {
		case <-o.kick:
		case <-o.src.After(wait):
		case <-ctx.Done():
		}
	}
}

// writeReleases records the tenures the node ended; it reports false if
// some could not be written (they are kept for the next try: a late
// release is still true, and until it is read the next owners wait their
// activation delay), and when the first release held back for its next
// owner to ask for is due (0: none; all: write those too).
//
// A group the node had loaded is handed off with its state: in one
// transaction, conditional on the group key being as the node last wrote
// it, a step more of max_seq for every section and the release with the
// max_seqs the node served up to (Floor) and the new ones (Max). Else (the
// group changed: a write of this node's whose outcome it did not learn)
// the release alone.
func (o *routed) writeReleases(ctx context.Context, timeout time.Duration, all bool) (bool, time.Duration) {
	o.releasing.Lock()
	defer o.releasing.Unlock()
	var rels []release
	var held time.Duration
	if all {
		rels = o.st.releases()
	} else {
		rels, held = o.st.dueReleases()
	}
	if len(rels) == 0 {
		return true, held
	}
	// The newest release of each group only (routeState.supersededLocked).
	var (
		mu     sync.Mutex
		failed []release
		wg     sync.WaitGroup
		slots  = make(chan struct{}, releaseWriters)
	)
	for _, r := range rels {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := o.writeRelease(ctx, timeout, r); err != nil {
				o.log.Debug("seq facade: cannot record a released group; its next owner waits its activation delay", "node", o.cfg.NodeName, "group", r.group, "err", err)
				mu.Lock()
				failed = append(failed, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		o.st.requeue(failed)
		return false, held
	}
	o.log.Debug("seq facade: released groups", "node", o.cfg.NodeName, "groups", len(rels))
	return true, held
}

// releaseWriters bounds the release transactions in flight: a node that
// closes releases every group it serves, one transaction each, and across
// datacenters each takes a round trip to etcd's leader.
const releaseWriters = 64

// writeRelease writes one release (see writeReleases).
func (o *routed) writeRelease(ctx context.Context, timeout time.Duration, r release) error {
	key := releasedKey(o.keys.released, r.group)
	plain, _ := json.Marshal(releaseRecord{tenure: r.t})
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, ok := o.handoff(r.group)
	if !ok || st.Revision == 0 {
		// Revision 0 (a group never written) would compare equal to a
		// deleted key, and rewrite it past the born-key check: no state.
		_, err := o.cli.Put(cctx, key, string(plain))
		return err
	}
	// HAZARD: Floor is what this node persisted and was told so: it
	// raised its sections only to acknowledged max_seqs, so it handed out
	// nothing above. The compare makes Max the group's persisted value
	// when the next owner reads the release; any other writer since (its
	// own write of unknown outcome) fails it, and the release goes alone.
	max := make([]uint64, len(st.MaxSeqs))
	for i, m := range st.MaxSeqs {
		max[i] = min(m+o.cfg.Step, MaxSeq)
	}
	full, _ := json.Marshal(releaseRecord{tenure: r.t, Floor: st.MaxSeqs, Max: max})
	gk := groupKey(o.cfg.Prefix, r.group)
	_, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.ModRevision(gk), "=", st.Revision)).
		Then(clientv3.OpPut(gk, string(encodeGroup(max))), clientv3.OpPut(bornKey(o.cfg.Prefix, r.group), "1"), clientv3.OpPut(key, string(full))).
		Else(clientv3.OpPut(key, string(plain))).
		Commit()
	return err
}

// reportLoad writes the node's calls a second by group since the last
// report, under its lease, and returns the counts it was computed from.
func (o *routed) reportLoad(ctx context.Context, l *lease.Lease, last map[int]uint64, lastAt, now time.Duration) (map[int]uint64, time.Duration) {
	cur := o.calls()
	secs := (now - lastAt).Seconds()
	rec := loadRecord{Groups: map[string]float64{}}
	total := 0.0
	for g, c := range cur {
		if p, ok := last[g]; ok && c >= p && secs > 0 {
			if r := float64(c-p) / secs; r > 0 {
				rec.Groups[strconv.Itoa(g)] = r
				total += r
			}
		}
	}
	o.load.Store(math.Float64bits(total))
	val, _ := json.Marshal(rec)
	cctx, cancel := l.CallContext(ctx)
	_, err := o.cli.Put(cctx, o.keys.load, string(val), clientv3.WithLease(l.ID()))
	cancel()
	if err != nil {
		o.log.Debug("seq facade: cannot report load", "node", o.cfg.NodeName, "err", err)
	}
	return cur, now
}

// drain marks the node as leaving and waits, until ctx is done, for the
// arbiter to hand its groups to other nodes: it releases each as it goes,
// so they are served elsewhere at once. It returns at once when no other
// node could take them.
func (o *routed) drain(ctx context.Context) error {
	o.draining.Store(true)
	o.mu.Lock()
	l, reg := o.mu.lease, o.mu.reg
	o.mu.Unlock()
	if l == nil || reg == 0 {
		return errors.New("not registered")
	}
	if o.st.owned() == 0 {
		return nil
	}
	// Both calls are tried again until ctx is done: one slow etcd answer
	// (a loaded host, an election) must not cost every group its handoff.
	var others int
	if err := o.retry(ctx, "counting the other nodes", func() (err error) {
		others, err = o.otherNodes(ctx)
		return err
	}); err != nil {
		return err
	}
	if others == 0 {
		return errors.New("no other node to hand the groups to")
	}
	if err := o.retry(ctx, "marking the node draining", func() error {
		return o.markDraining(ctx, l, reg)
	}); err != nil {
		return err
	}
	o.log.Info("seq facade: draining: waiting for the groups to be handed off", "node", o.cfg.NodeName, "groups", o.st.owned())
	for o.st.owned() > 0 {
		select {
		case <-o.src.After(10 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%d groups not handed off: %w", o.st.owned(), ctx.Err())
		}
	}
	// The last releases: written here, after any the errands are writing
	// (the process may stop as soon as this returns, cancelling theirs:
	// their groups' next owners would then wait for close to write them
	// again, or out their activation delay). Those held back for their
	// next owners to ask for are waited for, at most their pullWindow.
	for {
		written, held := o.writeReleases(ctx, o.cfg.RequestTimeout, false)
		if !written {
			return errors.New("some releases not written")
		}
		if held == 0 {
			return nil
		}
		select {
		case <-o.src.After(min(held-o.src.Mono(), 5*time.Millisecond)):
		case <-ctx.Done():
			if written, _ := o.writeReleases(context.WithoutCancel(ctx), o.cfg.RequestTimeout, true); !written {
				return errors.New("some releases not written")
			}
			return nil
		}
	}
}

// retry calls f until it succeeds, ctx is done, or it reports the
// registration gone, returning its last error then.
func (o *routed) retry(ctx context.Context, what string, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		if errors.Is(err, errRegistrationGone) || clock.Sleep(ctx, o.src, minRetry) != nil {
			return fmt.Errorf("drain: %s: %w", what, err)
		}
		o.log.Debug("seq facade: drain: retrying", "node", o.cfg.NodeName, "step", what, "err", err)
	}
}

// markDraining rewrites the registration with Draining set.
func (o *routed) markDraining(ctx context.Context, l *lease.Lease, reg int64) error {
	cctx, cancel := l.CallContext(ctx)
	defer cancel()
	tr, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(o.keys.node), "=", reg)).
		Then(clientv3.OpPut(o.keys.node, o.registrationValue(l), clientv3.WithLease(l.ID()))).
		Commit()
	switch {
	case err != nil:
		return fmt.Errorf("rewriting %s: %w", o.keys.node, err)
	case !tr.Succeeded:
		return errRegistrationGone
	}
	return nil
}

// otherNodes counts the registered nodes other than this one that are
// not leaving.
func (o *routed) otherNodes(ctx context.Context) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
	resp, err := o.cli.Get(cctx, o.keys.nodes, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, kv := range resp.Kvs {
		var r registration
		if string(kv.Key) != o.keys.node && json.Unmarshal(kv.Value, &r) == nil && !r.Draining {
			n++
		}
	}
	return n, nil
}

func (o *routed) drop(ctx context.Context, l *lease.Lease) {
	o.mu.Lock()
	if o.mu.lease == l {
		o.mu.lease = nil
		o.mu.reg = 0
	}
	o.mu.Unlock()
	// Best effort: an unrevoked lease expires by itself.
	_ = l.Close(context.WithoutCancel(ctx))
}

// close stops the loops, ends every claim, records the releases and
// revokes the lease held, if any, returning the revoke's error.
func (o *routed) close(ctx context.Context) error {
	o.cancel()
	<-o.loopDone
	o.st.close()
	o.writeReleases(ctx, o.cfg.RequestTimeout, true)
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
