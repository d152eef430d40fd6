package seqfacade

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/seqfacade/route"
)

// routeState is what a routed node knows of its groups, the two rules of
// docs/seq-failover.md as pure logic: the etcd side (routed) feeds it the
// tables it reads and the renewals they were read after, and it decides,
// on its clock, which group may be served until when. Safe for concurrent
// use.
//
// Rule 1: a table read by a confirmation (a linearizable read sent after
// an acknowledged renewal sent at r.Sent) lets the node serve the groups
// it gives the node until r.Sent + min(r.TTL, delay) - margin. Any table
// that moves a group away commits after that read was processed, hence
// after r.Sent.
//
// Rule 2: a group the node sees given to it (with a since it did not
// already hold) is activated only delay after that sighting, the sighting
// being timed after the table arrived, hence after it committed.
//
// Together: the old owner stops by s + TTL - margin, the new one starts at
// or after c + delay >= s + TTL, where s <= c is the old owner's last
// confirmation and c the commit of the table that moved the group.
type routeState struct {
	name       string
	src        clock.Source
	delay      time.Duration // ActivationDelay
	margin     time.Duration
	routingKey string
	nodeKey    string

	routing atomic.Pointer[route.Table] // the newest table's, for Node.Routing

	mu struct {
		sync.Mutex
		reg    int64  // CreateRevision of the node's registration; 0 while not registered
		tbl    *table // the newest table seen, nil before any
		slots  []slot // by group, for the groups tbl gives this node while registered
		closed bool
	}
}

// slot is a group the newest table gives this node.
type slot struct {
	mine      bool
	since     uint64        // the since it was given with
	observed  time.Duration // when first seen given, after the table arrived
	confirmed bool          // a confirmation has shown it given
	until     time.Duration // the last confirmation's serving deadline
	claim     *routedClaim  // nil until activated
}

func newRouteState(name string, src clock.Source, delay, margin time.Duration, routingKey, nodeKey string, groups int) *routeState {
	s := &routeState{name: name, src: src, delay: delay, margin: margin, routingKey: routingKey, nodeKey: nodeKey}
	s.mu.slots = make([]slot, groups)
	s.routing.Store(&route.Table{})
	return s
}

// begin starts a registration whose key was created at revision reg.
// Groups seen given to the node before are forgotten: their sightings
// count from the next table seen.
func (s *routeState) begin(reg int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked()
	if !s.mu.closed {
		s.mu.reg = reg
	}
}

// end ends the registration: every claim ends at once.
func (s *routeState) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked()
}

// close ends the registration for good.
func (s *routeState) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.closed = true
	s.endLocked()
}

func (s *routeState) endLocked() {
	s.mu.reg = 0
	for g := range s.mu.slots {
		if c := s.mu.slots[g].claim; c != nil {
			c.end()
		}
		s.mu.slots[g] = slot{}
	}
}

// observe takes in a table seen at now (read after it arrived) without
// confirming anything: from a watch.
func (s *routeState) observe(t *table, now time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(t, now, false, 0)
}

// confirm takes in a table read, at now, by a linearizable read sent
// after the renewal r was acknowledged: the groups it gives this node may
// be served until r.Sent + min(r.TTL, delay) - margin.
func (s *routeState) confirm(t *table, r lease.Renewal, now time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// HAZARD: measured from the renewal's send, never from the read's
	// answer; and no longer than the activation delay, which is what
	// other nodes wait before serving a group this node loses.
	s.applyLocked(t, now, true, r.Sent+min(r.TTL, s.delay)-s.margin)
}

func (s *routeState) applyLocked(t *table, now time.Duration, confirmed bool, until time.Duration) {
	if t == nil || len(t.Owners) != len(s.mu.slots) {
		return
	}
	if old := s.mu.tbl; old != nil && t.rev < old.rev {
		// Older than a table already seen: it confirms nothing (a group it
		// shows may have moved since), and the next round will do.
		return
	}
	s.mu.tbl = t
	s.routing.Store(&t.routing)
	if s.mu.reg == 0 {
		return
	}
	for g, o := range t.Owners {
		sl := &s.mu.slots[g]
		if o != s.name {
			// Moved away (or never here): unload at once.
			if sl.claim != nil {
				sl.claim.end()
			}
			*sl = slot{}
			continue
		}
		if !sl.mine || sl.since != t.since[g] {
			// Newly given, or given again after moving away and back
			// between two tables this node saw.
			if sl.claim != nil {
				sl.claim.end()
			}
			// HAZARD: now was read after the table arrived, hence after it
			// committed: activation counts from no earlier than the commit.
			*sl = slot{mine: true, since: t.since[g], observed: now}
		}
		if sl.claim != nil {
			sl.claim.setProof(s.proof(t.rev))
		}
		if confirmed {
			sl.confirmed = true
			sl.until = max(sl.until, until)
			if sl.claim != nil {
				sl.claim.extend(sl.until)
			}
		}
	}
}

// proof is what every max_seq write under a claim compares: the routing
// key is still the table the node last saw giving it the group (so no
// table has moved it since), and the node's registration is the one the
// claim was made under.
func (s *routeState) proof(rev int64) []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(s.routingKey), "=", rev),
		clientv3.Compare(clientv3.CreateRevision(s.nodeKey), "=", s.mu.reg),
	}
}

// claim returns the claim under which group g may be served now, or why
// not: a *NotOwnerError when the newest table gives g to another node, an
// error wrapping ErrUnavailable otherwise.
func (s *routeState) claim(g int) (Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
	}
	t := s.mu.tbl
	if t == nil {
		return nil, fmt.Errorf("%w: node %s has no routing table yet", ErrUnavailable, s.name)
	}
	switch o := t.Owners[g]; o {
	case s.name:
	case "":
		return nil, fmt.Errorf("%w: group %d has no owner in routing version %d", ErrUnavailable, g, t.Version)
	default:
		return nil, &NotOwnerError{Group: g, Owner: o, Address: t.members[o].Address, Routing: t.routing}
	}
	sl := &s.mu.slots[g]
	if s.mu.reg == 0 || !sl.mine {
		return nil, fmt.Errorf("%w: node %s is not registered", ErrUnavailable, s.name)
	}
	now := s.src.Mono()
	if sl.claim == nil {
		// HAZARD: not before the activation delay has passed since the
		// table was first seen: the previous owner may serve until then.
		if left := sl.observed + s.delay - now; left > 0 {
			return nil, fmt.Errorf("%w: group %d is activating on node %s (%v left)", ErrUnavailable, g, s.name, left)
		}
		if !sl.confirmed {
			return nil, fmt.Errorf("%w: group %d's routing not yet confirmed by node %s", ErrUnavailable, g, s.name)
		}
		sl.claim = newRoutedClaim(s.src, g, sl.until, s.proof(t.rev))
	}
	if h := sl.claim.Headroom(); h <= 0 {
		return nil, fmt.Errorf("%w: node %s has not confirmed its routing for %v", ErrUnavailable, s.name, -h)
	}
	return sl.claim, nil
}

// counts returns how many groups the newest table gives this node and how
// many of those are still activating (not yet claimed).
func (s *routeState) counts() (owned, activating int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range s.mu.slots {
		if sl.mine {
			owned++
			if sl.claim == nil {
				activating++
			}
		}
	}
	return owned, activating
}

// ready reports whether the node is registered and knows a table, so it
// can serve its groups or send callers to their owners.
func (s *routeState) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.reg != 0 && s.mu.tbl != nil
}

// routedClaim is a node's right to serve one group since one activation:
// extended by every confirmation that still gives the node the group,
// ended when a table moves it or the registration ends. Safe for
// concurrent use.
type routedClaim struct {
	group int
	dl    *clock.Deadline // ended just before done closes
	proof atomic.Pointer[[]clientv3.Cmp]
	done  chan struct{}
	once  sync.Once
}

var (
	_ Claim     = (*routedClaim)(nil)
	_ deadlined = (*routedClaim)(nil)
)

func newRoutedClaim(src clock.Source, g int, until time.Duration, proof []clientv3.Cmp) *routedClaim {
	c := &routedClaim{group: g, dl: clock.NewDeadline(src, until), done: make(chan struct{})}
	c.proof.Store(&proof)
	return c
}

func (c *routedClaim) Proof() []clientv3.Cmp { return *c.proof.Load() }
func (c *routedClaim) Done() <-chan struct{} { return c.done }

// Headroom is zero once the claim has ended: the deadline ends before
// Done closes, and an ended deadline is never extended.
func (c *routedClaim) Headroom() time.Duration   { return c.dl.Headroom() }
func (c *routedClaim) deadline() *clock.Deadline { return c.dl }

// extend moves the deadline to until if later, re-arming its fast check.
func (c *routedClaim) extend(until time.Duration) { c.dl.Extend(until) }

func (c *routedClaim) setProof(p []clientv3.Cmp) { c.proof.Store(&p) }

func (c *routedClaim) end() {
	c.once.Do(func() {
		c.dl.End()
		close(c.done)
	})
}
