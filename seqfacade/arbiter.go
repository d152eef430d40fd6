package seqfacade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/lease"
)

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
		won, rev, holder, err := o.campaign(ctx, l)
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
			o.awaitArbiter(ctx, l, rev, holder)
		}
		backoff = minRetry
	}
}

// campaign creates the arbiter key if absent. It returns whether this
// node holds it with the key's CreateRevision, or else the revision to
// watch the key from and its holder (zero if none).
func (o *routed) campaign(ctx context.Context, l *lease.Lease) (won bool, rev int64, holder arbiterKey, err error) {
	cctx, cancel := l.CallContext(ctx)
	defer cancel()
	tr, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(o.keys.arbiter), "=", 0)).
		Then(clientv3.OpPut(o.keys.arbiter, o.cfg.NodeName, clientv3.WithLease(l.ID()))).
		Else(clientv3.OpGet(o.keys.arbiter)).
		Commit()
	if err != nil {
		return false, 0, arbiterKey{}, err
	}
	if tr.Succeeded {
		return true, tr.Header.Revision, arbiterKey{}, nil
	}
	kvs := tr.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return false, tr.Header.Revision, arbiterKey{}, nil
	}
	if clientv3.LeaseID(kvs[0].Lease) == l.ID() {
		// An earlier attempt whose answer was lost did create it.
		return true, kvs[0].CreateRevision, arbiterKey{}, nil
	}
	return false, tr.Header.Revision, arbiterKey{name: string(kvs[0].Value), rev: kvs[0].CreateRevision}, nil
}

// arbiterKey is the arbiter key's holder and CreateRevision, and the
// holder's registration (CreateRevision; 0: not known).
type arbiterKey struct {
	name     string
	rev, reg int64
}

// registrationOf returns the CreateRevision of node's registration, 0 if
// it has none or it cannot be read.
func (o *routed) registrationOf(ctx context.Context, l *lease.Lease, node string) int64 {
	cctx, cancel := l.CallContext(ctx)
	defer cancel()
	resp, err := o.cli.Get(cctx, o.keys.nodes+node)
	if err != nil || len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].CreateRevision
}

// awaitArbiter waits until the arbiter key may have gone: a delete seen
// by a watch from rev, a watch that fails, or a lease TTL without news
// (a watch can hang in a partition); or until its holder has been silent
// for a lease TTL (quiet.silent), and then deletes the key, so that the
// nodes campaign again without waiting for etcd to expire the holder's
// lease (the new arbiter's writes are fenced by the key's new
// CreateRevision: the old one's fail from then on).
func (o *routed) awaitArbiter(ctx context.Context, l *lease.Lease, rev int64, holder arbiterKey) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := o.cli.Watch(wctx, o.keys.arbiter, clientv3.WithRev(rev+1))
	poll := o.src.After(o.cfg.Lease.TTL)
	if holder.name == o.cfg.NodeName {
		holder = arbiterKey{}
	}
	if holder.name != "" {
		holder.reg = o.registrationOf(ctx, l, holder.name)
	}
	for {
		var silence <-chan struct{}
		if holder.reg != 0 {
			now := o.src.Mono()
			gone, at, last := o.q.silent(holder.name, holder.reg, o.silence(l), now)
			if gone {
				if o.unseat(ctx, l, holder, last) {
					return
				}
				// It confirmed after all, or is not what this node took it
				// for: judge it no more until the key changes or the poll.
				holder.reg = 0
				continue
			}
			if at == 0 {
				at = now + o.cfg.ConfirmInterval // this node cannot judge yet
			}
			silence = o.src.After(at - now)
		}
		select {
		case <-silence:
			continue
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

// unseat deletes the arbiter key of a holder silent for a lease TTL, if
// it is still its key, under the same registration, and has not
// confirmed since last, the put it was judged on. It reports whether it
// did.
func (o *routed) unseat(ctx context.Context, l *lease.Lease, holder arbiterKey, last confirmRead) bool {
	cctx, cancel := l.CallContext(ctx)
	defer cancel()
	tr, err := o.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(o.keys.arbiter), "=", holder.rev),
			clientv3.Compare(clientv3.ModRevision(o.keys.confirms+holder.name), "=", last.rev),
			clientv3.Compare(clientv3.CreateRevision(o.keys.nodes+holder.name), "=", holder.reg)).
		Then(clientv3.OpDelete(o.keys.arbiter)).
		Else(clientv3.OpGet(o.keys.confirms + holder.name)).
		Commit()
	switch {
	case err != nil:
		return false
	case tr.Succeeded:
		o.log.Warn("seq facade: the sequence arbiter has not confirmed for a lease TTL: unseated it", "node", o.cfg.NodeName, "arbiter", holder.name, "for", o.silence(l))
		return true
	}
	// It confirmed after all (this node's watch of the confirm keys
	// lags): take the news.
	if kvs := tr.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		o.q.confirmSeen(holder.name, confirmOf(kvs[0]), o.src.Mono())
	}
	return false
}

// cluster is what the arbiter reads in one transaction: the
// registrations, the table and the load reports.
type cluster struct {
	live    []Member
	members map[string]member // live registrations, Reg their CreateRevision
	tbl     *table            // nil when none
	rev     int64             // the table's ModRevision; 0 when none
	foreign bool              // tbl is not the table an arbiter last wrote
	read    int64             // the revision read at
	load    []float64         // calls a second by group, from the reports
}

// leader is what the arbiter remembers between rounds while it holds the
// role: not persisted, so a new arbiter starts with no evidence and no
// group cooling.
type leader struct {
	lastRound time.Duration         // the last full round (planned moves)
	evidence  map[string]int        // rounds in a row each place was out of the load band
	moved     map[int]time.Duration // when each group last moved
	// vouchAt is the next moment a tenure the last table did not vouch
	// for could be (quiet.go); 0: none pending.
	vouchAt time.Duration
	// silenceAt is the next moment a live member would be silent for a
	// lease TTL (quiet.silent); 0: none known. silent are the members
	// whose groups were moved for their silence (logged once).
	silenceAt time.Duration
	silent    map[string]bool
}

// wakeAt is the first moment a round may have something to do before the
// next full round: a vouching or a silence due (0: none).
func (ld *leader) wakeAt() time.Duration {
	switch {
	case ld.vouchAt == 0:
		return ld.silenceAt
	case ld.silenceAt == 0:
		return ld.vouchAt
	}
	return min(ld.vouchAt, ld.silenceAt)
}

// round plans the next owners at now: a full round (homes, weights and
// load, at most cfg.MaxMoves groups of live members) when one is due,
// else only the moves that cannot wait (gone and draining members'
// groups). commit records the round (its time, the moved groups' cooldown,
// the load evidence used up): the caller calls it once the table is
// written, or found unchanged.
//
// Load moves need cfg.EvidenceRounds full rounds in a row out of the
// tolerance band (fresh after each load move), never move a group that
// moved within cfg.Cooldown, and never overshoot (see Plan): a skewed load
// settles instead of swinging.
func (ld *leader) round(in PlanInput, now time.Duration, cfg Config) (owners []string, moves []Move, commit func()) {
	full := now >= ld.lastRound+cfg.RebalanceInterval
	in.Tolerance = cfg.Tolerance
	in.Cooling = func(g int) bool {
		t, ok := ld.moved[g]
		return ok && now < t+cfg.Cooldown
	}
	evidence := maps.Clone(ld.evidence)
	if full {
		in.MaxMoves = cfg.MaxMoves
		in.LoadDC = map[string]bool{}
		var outside map[string]bool
		in.Busy, outside = loadState(in, cfg.MinLoad)
		for pool, out := range outside {
			if out {
				evidence[pool]++
			} else {
				evidence[pool] = 0
			}
			in.LoadDC[pool] = evidence[pool] >= cfg.EvidenceRounds
		}
	}
	owners, moves = Plan(in)
	return owners, moves, func() {
		if full {
			ld.lastRound = now
		}
		ld.evidence = evidence
		for _, m := range moves {
			switch m.Reason {
			case MoveHome, MoveBalance, MoveLoad:
				// Planned moves cool down; placing an orphan does not.
			default:
				continue
			}
			ld.moved[m.Group] = now
			if m.Reason == MoveLoad {
				// Fresh evidence is needed before the next load moves there.
				for pool, used := range in.LoadDC {
					if used {
						ld.evidence[pool] = 0
					}
				}
			}
		}
	}
}

// newLeader is the memory of an arbiter that just took the role: a full
// round due at once, no evidence, nothing cooling.
func newLeader(now time.Duration, cfg Config) *leader {
	return &leader{lastRound: now - cfg.RebalanceInterval, evidence: map[string]int{}, moved: map[int]time.Duration{}, silent: map[string]bool{}}
}

// lead writes the routing table while this node holds the arbiter key
// created at revision arbRev: at once when a registration comes, goes or
// starts draining (the groups of gone and draining nodes move), and a
// full round every RebalanceInterval (homes, weights and load, at most
// MaxMoves groups). It returns why it stopped.
func (o *routed) lead(ctx context.Context, l *lease.Lease, arbRev int64) error {
	var w nodesWatch // none until the first read
	defer func() { w.stop() }()
	ld := newLeader(o.src.Mono(), o.cfg)
	backoff, failing := minRetry, false
	for ctx.Err() == nil {
		wait := o.cfg.RebalanceInterval
		c, err := o.readCluster(ctx, l, arbRev)
		if err == nil {
			err = o.plan(ctx, l, arbRev, c, ld)
			if w.ch == nil {
				w = o.watchNodes(ctx, c.read+1)
			}
		}
		switch {
		case errors.Is(err, errNotArbiter):
			return err
		case err != nil:
			lvl := slog.LevelWarn
			if failing {
				lvl = slog.LevelDebug // the first failure of a streak says it all
			}
			o.log.Log(ctx, lvl, "seq facade: arbiter cannot read or write the routing table; retrying", "node", o.cfg.NodeName, "err", err, "retry_in", backoff)
			wait, backoff, failing = backoff, min(2*backoff, maxRetry), true
		default:
			backoff, failing = minRetry, false
			wait = max(ld.lastRound+o.cfg.RebalanceInterval-o.src.Mono(), 0)
			if at := ld.wakeAt(); at > 0 {
				wait = min(wait, max(at-o.src.Mono(), 0))
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

// readCluster reads the registrations, the table and the load reports in
// one linearizable transaction that also checks this node still holds
// the arbiter key.
func (o *routed) readCluster(ctx context.Context, l *lease.Lease, arbRev int64) (cluster, error) {
	cctx, cancel := l.CallContext(ctx)
	tr, err := o.cli.Txn(cctx).
		If(o.fence(arbRev)).
		Then(clientv3.OpGet(o.keys.nodes, clientv3.WithPrefix()),
			clientv3.OpGet(o.keys.routing),
			clientv3.OpGet(o.keys.loads, clientv3.WithPrefix()),
			clientv3.OpGet(o.keys.written),
			clientv3.OpGet(o.keys.confirms, clientv3.WithPrefix())).
		Commit()
	cancel()
	now := o.src.Mono() // after the answer: everything read committed before
	if err != nil {
		return cluster{}, fmt.Errorf("arbiter reading %s and %s: %w", o.keys.nodes, o.keys.routing, err)
	}
	if !tr.Succeeded {
		return cluster{}, errNotArbiter
	}
	c := cluster{members: map[string]member{}, read: tr.Header.Revision, load: make([]float64, o.lay.groups)}
	for _, kv := range tr.Responses[0].GetResponseRange().Kvs {
		name := strings.TrimPrefix(string(kv.Key), o.keys.nodes)
		var r registration
		if err := json.Unmarshal(kv.Value, &r); err != nil || name == "" || strings.Contains(name, "/") {
			o.log.Warn("seq facade: arbiter skips an unreadable registration", "key", string(kv.Key), "err", err)
			continue
		}
		c.live = append(c.live, Member{Name: name, Datacenter: r.Datacenter, Weight: r.Weight, Draining: r.Draining})
		c.members[name] = member{Address: r.Address, Datacenter: r.Datacenter, Reg: kv.CreateRevision}
	}
	if kvs := tr.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		t, err := decodeTable(kvs[0].Value, kvs[0].ModRevision, o.lay)
		if err != nil {
			// An operator must repair it: writing over it could hand a
			// group to two nodes.
			return cluster{}, err
		}
		c.tbl, c.rev = t, t.rev
		// HAZARD: a table no arbiter wrote (an old value written back by
		// hand, or written before this key existed) may name as prev
		// tenures whose releases, with their handoff state, were used
		// already; a new owner would take them again and serve values
		// handed out since. Its tenures are not kept: see plan.
		written := tr.Responses[3].GetResponseRange().Kvs
		c.foreign = len(written) == 0 || string(written[0].Value) != strconv.FormatUint(t.Version, 10)
		if c.foreign {
			o.q.resetTables()
		} else {
			o.q.tableSeen(t.Version, now)
		}
	}
	confirms := map[string]confirmRead{}
	for _, kv := range tr.Responses[4].GetResponseRange().Kvs {
		confirms[strings.TrimPrefix(string(kv.Key), o.keys.confirms)] = confirmOf(kv)
	}
	o.q.confirmsRead(confirms, c.read, now)
	for _, kv := range tr.Responses[2].GetResponseRange().Kvs {
		name := strings.TrimPrefix(string(kv.Key), o.keys.loads)
		var r loadRecord
		if json.Unmarshal(kv.Value, &r) != nil {
			continue
		}
		for gs, rate := range r.Groups {
			g, err := strconv.Atoi(gs)
			if err != nil || g < 0 || g >= o.lay.groups || !(rate >= 0) {
				continue
			}
			// The owner's report counts; another's (a group that just
			// moved) only while the owner has none.
			if c.tbl != nil && c.tbl.Owners[g] == name {
				c.load[g] = rate
			} else if c.tbl == nil || c.load[g] == 0 {
				c.load[g] = max(c.load[g], rate)
			}
		}
	}
	return c, nil
}

// plan computes and writes the next table from c: a full round (planned
// moves) when one is due, else only the moves that cannot wait.
func (o *routed) plan(ctx context.Context, l *lease.Lease, arbRev int64, c cluster, ld *leader) error {
	now := o.src.Mono()
	var prev []string
	if c.tbl != nil {
		prev = c.tbl.Owners
	} else {
		prev = make([]string, o.lay.groups)
	}
	in := PlanInput{Owners: prev, Live: o.audible(l, c, ld, now), Homes: o.cfg.Homes, Load: c.load}
	if o.cfg.HomeOnly {
		in.HomeOnly = o.cfg.Datacenter
	}
	// HAZARD: only members whose registration (bound to their lease) is
	// gone, or who have been silent for a lease TTL, are absent from the
	// live ones; only their groups move without the owner's release, and
	// activation delays or the vouching cover them (docs/seq-failover.md).
	owners, moves, commit := ld.round(in, now, o.cfg)
	members := map[string]member{}
	for _, owner := range owners {
		if owner == "" {
			continue
		}
		if m, ok := c.members[owner]; ok {
			members[owner] = m
		} else if c.tbl != nil {
			// An owner with no live registration keeps its entry while no
			// live member can take its groups.
			members[owner] = c.tbl.members[owner]
		}
	}
	var t *table
	changed := true
	vouch := o.q.vouching(now)
	if c.foreign {
		// Every group begins a new tenure with no previous one: each owner,
		// the same or not, waits its activation delay and reads its groups
		// (rule 2), and no release counts. Versions stay above the table's.
		t, _ = nextTable(nil, owners, members, o.lay, max(uint64(c.read), c.tbl.Version+1), nil)
		o.log.Warn("seq facade: the routing table is not the one an arbiter last wrote (written back by hand, or from before this version): every group begins a new tenure, and their owners wait their activation delay",
			"node", o.cfg.NodeName, "key", o.keys.routing, "version", c.tbl.Version, "mark", o.keys.written)
	} else {
		t, changed = nextTable(c.tbl, owners, members, o.lay, uint64(c.read), vouch.over)
	}
	ld.vouchAt = vouch.next
	if !changed {
		commit()
		return nil
	}
	cctx, cancel := l.CallContext(ctx)
	tr, err := o.cli.Txn(cctx).
		If(append(vouch.cmps(func(node string) string { return o.keys.confirms + node }),
			o.fence(arbRev), clientv3.Compare(clientv3.ModRevision(o.keys.routing), "=", c.rev))...).
		Then(clientv3.OpPut(o.keys.routing, string(t.encode())), clientv3.OpPut(o.keys.written, strconv.FormatUint(t.Version, 10))).
		Else(clientv3.OpGet(o.keys.arbiter)).
		Commit()
	cancel()
	if err != nil {
		// The write may have happened: the next round reads again.
		return fmt.Errorf("arbiter writing %s version %d: %w", o.keys.routing, t.Version, err)
	}
	if !tr.Succeeded {
		kvs := tr.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].CreateRevision != arbRev {
			return errNotArbiter
		}
		return fmt.Errorf("arbiter writing %s version %d: the table changed meanwhile, or a node vouched for as silent confirmed", o.keys.routing, t.Version)
	}
	o.q.tableSeen(t.Version, o.src.Mono())
	commit()
	byReason := map[string]int{}
	for _, m := range moves {
		byReason[m.Reason]++
	}
	if c.tbl != nil {
		for g, o := range owners {
			switch {
			case o == "" || o != c.tbl.Owners[g] || t.since[g] == c.tbl.since[g]:
			case c.foreign:
				byReason[MoveReset]++
			default:
				byReason[MoveRestart]++ // the same node, registered again
			}
		}
	}
	o.moves.add(byReason)
	o.log.Info("seq facade: routing table written", "node", o.cfg.NodeName, "version", t.Version, "moves", byReason, "members", len(c.live), "routes", len(t.routing.Routes))
	return nil
}

// audible returns the live members but those silent for a lease TTL
// (quiet.silent): their groups move as if their registrations were gone,
// without waiting for etcd to expire their leases (which an election
// lengthens by its timeout, and a 500 ms sweep delays further). It
// records in ld when the next member could fall silent. This node is
// never silent to itself.
func (o *routed) audible(l *lease.Lease, c cluster, ld *leader, now time.Duration) []Member {
	ld.silenceAt = 0
	out := make([]Member, 0, len(c.live))
	for _, m := range c.live {
		if m.Name != o.cfg.NodeName {
			gone, at, _ := o.q.silent(m.Name, c.members[m.Name].Reg, o.silence(l), now)
			if gone {
				if !ld.silent[m.Name] {
					ld.silent[m.Name] = true
					o.log.Warn("seq facade: a sequence node has not confirmed for a lease TTL: moving its groups", "node", o.cfg.NodeName, "silent", m.Name, "for", o.silence(l))
				}
				continue
			}
			if at > 0 && (ld.silenceAt == 0 || at < ld.silenceAt) {
				ld.silenceAt = at
			}
		}
		delete(ld.silent, m.Name)
		out = append(out, m)
	}
	return out
}

// silence is how long a node must have put no confirmation to be taken
// for gone: the lease TTL etcd granted, as etcd would take it (but
// without the lengthening of an election or the wait for etcd's sweep),
// and never less than an activation delay and a confirmation interval,
// so that a node that confirms at its pace is never silent, and the
// arbiter may vouch for its tenures at once (quiet.go).
func (o *routed) silence(l *lease.Lease) time.Duration {
	return max(l.TTL(), o.cfg.ActivationDelay+o.cfg.ConfirmInterval)
}

// fence is the comparison that holds only while this node holds the
// arbiter key it created at revision arbRev.
func (o *routed) fence(arbRev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(o.keys.arbiter), "=", arbRev)
}

// moveCounts counts the groups moved by this node as the arbiter, by
// reason. Safe for concurrent use.
type moveCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (m *moveCounts) add(byReason map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]uint64{}
	}
	for r, k := range byReason {
		m.n[r] += uint64(k)
	}
}

func (m *moveCounts) snapshot() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.n)
}
