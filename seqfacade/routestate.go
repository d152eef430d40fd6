package seqfacade

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/seqfacade/route"
)

// routeState is what a node knows of its groups, the rules of
// docs/seq-failover.md as pure logic: the etcd side (routed) feeds it the
// tables and release markers it reads, and the send times of its
// confirmations, and it decides, on its clock, which group may be served
// until when. Safe for concurrent use.
//
// Rule 1: a table read by a confirmation (a linearizable read, sent at
// sent, that also found the node's registration) lets the node serve the
// groups it gives the node until sent + claim, where claim =
// ActivationDelay - margin. Any table that moves a group away commits
// after that read was processed, hence after sent. A group that a newer
// table, seen through the watch, gives the node may be served under the
// same right (right, lent; once its previous owner released it, see
// rightLocked): that table, and any that ends the tenure it begins,
// commit after the read too.
//
// Rule 2: a group the node sees given to it (a tenure it did not hold) is
// served only delay after that sighting (timed after the table arrived,
// hence after it committed), or as soon as the node has read its previous
// owner's release of exactly the tenure before (handoff), or a table
// whose arbiter vouched that tenure's right over (quiet.go: after a
// crash).
//
// Rule 3: a node releases a tenure (writes the marker) only after it has
// ended its claim on it, and only for a tenure whose activation condition
// held (its delay passed, or its predecessor released): that is what
// shows that every tenure before it has ended, so a release vouches for
// the whole history of the group.
//
// Together: the old owner stops by s + claim, the new one starts at or
// after c + delay > s + claim, where s <= c is the old owner's last
// confirmation and c the commit of the table that moved the group; or
// after the old owner said it had stopped.
type routeState struct {
	name  string
	src   clock.Source
	delay time.Duration // ActivationDelay
	claim time.Duration // a confirmation's right to serve: delay - margin
	keys  routeKeys
	homes Homes
	// homeOnly is the datacenter whose own store this is, if it is one.
	homeOnly string

	routing atomic.Pointer[route.Table] // the newest table's, for Node.Routing
	// vouched counts tenures activated before their delay on a table's
	// vouching (quiet.go): crash failovers without the delay.
	vouched atomic.Uint64
	// changed is called, without the lock, after anything that may make a
	// group activatable or a tenure releasable (never nil).
	changed func()

	mu struct {
		sync.Mutex
		reg      int64              // CreateRevision of the node's registration; 0 while not registered
		tbl      *table             // the newest table seen, nil before any
		slots    []slot             // by group, for the groups tbl gives this incarnation
		released map[int][]released // release markers read, by group (the last few)
		held     []uint64           // by group, the newest since this incarnation held; 0: none
		ended    []release          // tenures activated and ended, to release
		// releasedSince is, by group, the newest tenure whose release came
		// due: an older one, held back meanwhile, is dropped, since written
		// after it, it would hide it.
		releasedSince map[int]uint64
		// right is the right to serve of the node's latest confirmation
		// (its send + claim), which a group seen given by a table as new
		// as the one it read is served under (rule 1; 0: none since the
		// registration began or its lease lapsed).
		right time.Duration
		// tick is closed, and replaced, whenever a table is taken in or
		// the registration ends: handOff waits on it for a tenure to end.
		tick chan struct{}
		// suspended: the lease's deadline passed, and whether etcd still
		// holds the registration is not known yet (see suspend).
		suspended bool
		closed    bool
	}
}

// slot is a group the newest table gives this node's incarnation.
type slot struct {
	mine      bool
	since     uint64
	prev      tenure        // the tenure before this one
	observed  time.Duration // when first seen given, after the table arrived
	until     time.Duration // the right to serve from the last confirmation; 0: none yet
	activated bool          // a claim was made in this tenure (so its predecessors had ended)
	claim     *routedClaim  // the live claim, nil before activation
	wait      chan struct{} // closed (and nil) once the slot activates or ends
	preloaded bool          // the node was told to load it
	loaded    bool          // the node began a load in this tenure (takeFirstLoad)
	read      *GroupState   // the group as a confirmation read it in this tenure (takeFirstLoad)
	readAt    time.Duration // when read was taken in
	repeated  bool          // a tenure this incarnation held before: no release counts
	over      bool          // a table vouched prev's right over (quiet.go)
	// lent is the right of the node's latest confirmation when the slot
	// began (rule 1), which it is served under, before a confirmation
	// of its own tenure, once its previous owner has released it
	// (rightLocked).
	lent time.Duration
	// prevAddr is where prev's node answers, when the table that began
	// this tenure or the one before it names that incarnation: it is
	// asked for its release (toPull). pulled: it was asked.
	prevAddr string
	pulled   bool
}

// release is a tenure this node activated and has ended, to record in
// etcd so that the group's next owner may serve at once.
//
// A tenure that ended because a table gave the group to another live
// node is held back until hold: its next owner asks for it directly
// (handOff), and the group's state, handed over in the answer, must not
// be raised under it by a release written meanwhile. Once asked
// (pulling, then pulled), it is written without state when it is.
type release struct {
	group   int
	t       tenure
	hold    time.Duration // not written before, unless pulled; 0: at once
	pulling bool          // a handOff is taking its state: not written yet
	pulled  bool          // handed over directly: write it now
}

func newRouteState(cfg Config, src clock.Source, keys routeKeys, groups int) *routeState {
	s := &routeState{
		name:    cfg.NodeName,
		src:     src,
		delay:   cfg.ActivationDelay,
		claim:   cfg.claimLength(),
		keys:    keys,
		homes:   cfg.Homes,
		changed: func() {},
	}
	if cfg.HomeOnly {
		s.homeOnly = cfg.Datacenter
	}
	s.mu.slots = make([]slot, groups)
	s.mu.held = make([]uint64, groups)
	s.mu.released = map[int][]released{}
	s.mu.releasedSince = map[int]uint64{}
	s.mu.tick = make(chan struct{})
	s.routing.Store(&route.Table{})
	return s
}

// tickedLocked wakes every handOff waiting for a tenure to end.
func (s *routeState) tickedLocked() {
	close(s.mu.tick)
	s.mu.tick = make(chan struct{})
}

// begin starts a registration whose key was created at revision reg. A
// new registration is a new incarnation: groups are given to it afresh.
func (s *routeState) begin(reg int64) {
	s.mu.Lock()
	s.endLocked()
	if !s.mu.closed {
		s.mu.reg = reg
		clear(s.mu.held) // tenures are an incarnation's
	}
	s.mu.right = 0 // a right is a registration's
	if t := s.mu.tbl; t != nil && s.mu.reg != 0 {
		s.applyLocked(t, s.src.Mono(), false, 0)
	}
	s.mu.Unlock()
	s.changed()
}

// suspend ends every claim at once, as end does, but keeps the slots and
// queues no release: the registration's lease passed its deadline, and
// etcd may hold it yet (routed.resume). Nothing is served until resume,
// then only under a fresh confirmation; if the registration turns out
// lost, end queues the releases.
//
// HAZARD: no release while suspended: a release says a tenure is over,
// and resume carries the tenures on.
func (s *routeState) suspend() {
	s.mu.Lock()
	s.mu.suspended = true
	s.mu.right = 0
	for g := range s.mu.slots {
		sl := &s.mu.slots[g]
		if sl.claim != nil {
			sl.claim.end()
			sl.claim = nil
		}
		// A fresh confirmation, under the resumed lease, before any claim;
		// and a load afresh (loaded stays set: no handoff state again).
		sl.until, sl.lent, sl.preloaded = 0, 0, false
		sl.read = nil // read before the lapse: read again
	}
	s.mu.Unlock()
	s.changed()
}

// resume serves the same registration again after suspend: etcd still
// held its lease, so no table has moved a group for its loss, and the
// tenures go on (a tenure this incarnation activated needs no delay).
func (s *routeState) resume() {
	s.mu.Lock()
	s.mu.suspended = false
	s.mu.Unlock()
	s.changed()
}

// end ends the registration: every claim ends at once.
func (s *routeState) end() {
	s.mu.Lock()
	s.endLocked()
	s.mu.Unlock()
	s.changed()
}

// close ends the registration for good.
func (s *routeState) close() {
	s.mu.Lock()
	s.mu.closed = true
	s.endLocked()
	s.mu.Unlock()
	s.changed()
}

func (s *routeState) endLocked() {
	for g := range s.mu.slots {
		s.dropLocked(g, false)
	}
	s.mu.reg = 0
	s.mu.suspended = false
	s.mu.right = 0
	s.tickedLocked()
}

// pullWindow is how long the release of a tenure that a table gave to
// another live node is held back for that node to ask for it directly
// (handOff): it sees the same table at about the same moment and asks at
// once, a round trip between nodes, where the release in etcd takes a
// quorum write and a watch. Past it (the next owner cannot ask: an older
// version, a partition), the release goes to etcd as before.
const pullWindow = 250 * time.Millisecond

// dropLocked ends group g's slot: its claim ends at once, and a tenure it
// activated is queued for release; held back for pullWindow if moved to
// another live node, which may ask for it (see release).
func (s *routeState) dropLocked(g int, moved bool) {
	sl := &s.mu.slots[g]
	if !sl.mine {
		return
	}
	if sl.claim != nil {
		// HAZARD: the claim ends (its deadline first) before the release
		// is queued: a value is handed out only if the deadline is live
		// when checked after the take, so nothing is handed out under
		// this tenure once the release can be written.
		sl.claim.end()
	}
	// A tenure whose activation condition was met vouches for its
	// predecessors even if this node never served it: release it too.
	if now := s.src.Mono(); sl.activated || now >= sl.observed+s.delay || s.prevEndedLocked(g, sl) {
		r := release{group: g, t: tenure{Node: s.name, Reg: s.mu.reg, Since: sl.since}}
		if moved {
			r.hold = now + pullWindow
		}
		s.mu.ended = append(s.mu.ended, r)
	}
	if sl.wait != nil {
		close(sl.wait)
	}
	*sl = slot{}
}

// observe takes in a table seen at now (read after it arrived) without
// confirming anything: from a watch.
func (s *routeState) observe(t *table, now time.Duration) {
	s.mu.Lock()
	s.applyLocked(t, now, false, 0)
	s.mu.Unlock()
	s.changed()
}

// confirm takes in a table read, at now, by a linearizable read sent at
// sent that found the node's registration in place: the groups it gives
// this incarnation may be served until sent + claim.
func (s *routeState) confirm(t *table, sent, now time.Duration) {
	s.mu.Lock()
	// HAZARD: measured from the read's send, never from its answer; and
	// shorter than the activation delay by the margin, which is what
	// other nodes wait before serving a group this node loses.
	s.applyLocked(t, now, true, sent+s.claim)
	s.mu.Unlock()
	s.changed()
}

// keptReleases bounds the release markers remembered per group: a
// marker states a fact that never stops being true (that tenure ended),
// so the few latest are kept whatever order reads deliver them in.
const keptReleases = 4

// released is a release marker read: the tenure released and, for a
// handoff, the group's state it was left in.
type released struct {
	t     tenure
	state *handoffState
}

// handoffState is a group as its previous owner handed it off: each
// section's max_seq it served up to at most (floor), the max_seq
// persisted above it (max), and the group key's revision then.
type handoffState struct {
	floor, max []uint64
	rev        int64
}

// releasedSeen takes in release markers read from etcd.
func (s *routeState) releasedSeen(markers map[int]released) {
	s.mu.Lock()
	for g, rel := range markers {
		if g < 0 || g >= len(s.mu.slots) || rel.t.Node == "" || slices.ContainsFunc(s.mu.released[g], func(r released) bool { return r.t == rel.t }) {
			continue
		}
		r := append(s.mu.released[g], rel)
		if len(r) > keptReleases {
			r = r[len(r)-keptReleases:]
		}
		s.mu.released[g] = r
	}
	s.mu.Unlock()
	s.changed()
}

func (s *routeState) applyLocked(t *table, now time.Duration, confirmed bool, until time.Duration) {
	if t == nil || len(t.Owners) != len(s.mu.slots) {
		return
	}
	if old := s.mu.tbl; old != nil && (t.rev < old.rev || t.Version < old.Version) {
		// Older than a table already seen: it confirms nothing (a group it
		// shows may have moved since), and the next round will do. An old
		// table's value written back (an operator's "undo": a newer
		// revision, an older version) would reuse tenures already ended,
		// whose releases this node may remember: refused likewise.
		return
	}
	old := s.mu.tbl
	s.mu.tbl = t
	s.routing.Store(&t.routing)
	defer s.tickedLocked()
	if s.mu.reg == 0 {
		return
	}
	if confirmed {
		s.mu.right = max(s.mu.right, until)
	}
	mine := t.members[s.name].Reg == s.mu.reg
	for g, o := range t.Owners {
		sl := &s.mu.slots[g]
		if o != s.name || !mine {
			// Moved away, or never here: unload at once. A live next owner
			// may ask for the release.
			next, ok := t.members[o]
			s.dropLocked(g, ok && o != s.name && next.Address != "")
			continue
		}
		if !sl.mine || sl.since != t.since[g] {
			// Newly given, or given again after moving away and back
			// between two tables this node saw.
			s.dropLocked(g, false)
			// HAZARD: now was read after the table arrived, hence after it
			// committed: activation counts from no earlier than the commit.
			//
			// HAZARD: lent is the right of the node's latest confirmation,
			// which read a table no newer than t (tables older than one
			// seen are refused above), so it was sent before t committed,
			// and before any table that ends this tenure: the argument of
			// rule 1 holds for it as for a confirmation that read t. It is
			// no later for it: a watch event widens the right to the new
			// group, it never lengthens it.
			*sl = slot{mine: true, since: t.since[g], prev: t.prev[g], observed: now, lent: s.mu.right, wait: make(chan struct{})}
			sl.prevAddr = addressOf(sl.prev, t, old)
			// HAZARD: a tenure this incarnation held already (or an older
			// one) is back: an old table's value was written back, or
			// etcd restored, and the arbiter kept the tenure of an owner
			// whose incarnation did not change. Its predecessor's release
			// vouches for nothing now (the group has had owners since,
			// maybe serving yet), and its handoff state was used: wait
			// the delay, and read the group.
			if t.since[g] <= s.mu.held[g] {
				sl.repeated, sl.loaded = true, true
			}
			s.mu.held[g] = max(s.mu.held[g], t.since[g])
		}
		if t.over[g] && t.prev[g] == sl.prev {
			// The arbiter may vouch for a tenure in a later table than the
			// one that began it.
			sl.over = true
		}
		if sl.claim != nil {
			sl.claim.setProof(s.proof(t.rev))
		}
		if confirmed {
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
		clientv3.Compare(clientv3.ModRevision(s.keys.routing), "=", rev),
		clientv3.Compare(clientv3.CreateRevision(s.keys.node), "=", s.mu.reg),
	}
}

// prevEndedLocked reports whether slot sl's previous tenure is known to
// have ended: its owner released it (it ended it after activating it), or
// a table vouched that its right to serve was over (quiet.go).
//
// HAZARD: never for a repeated tenure: the group has had owners since the
// release or the vouching, which may serve yet.
func (s *routeState) prevEndedLocked(g int, sl *slot) bool {
	return sl.prev.Node != "" && !sl.repeated && (sl.over || slices.ContainsFunc(s.mu.released[g], func(r released) bool { return r.t == sl.prev }))
}

// rightLocked returns until when slot sl (group g) may be served: the
// right of the confirmations that showed its tenure, or, before any
// did, the right lent by the latest confirmation when the tenure began
// (rule 1), once the previous owner has released the tenure. Lent only
// then: its first load comes with the release's state and needs no read,
// where a group taken after a crash reads the group anyway, and the
// confirmation of its table reads it ahead (routeState.readSeen) in the
// same round trip: loading it before that confirmation would cost a read
// of its own.
func (s *routeState) rightLocked(g int, sl *slot) time.Duration {
	if sl.until > 0 || sl.lent == 0 || sl.prev.Node == "" || sl.repeated ||
		!slices.ContainsFunc(s.mu.released[g], func(r released) bool { return r.t == sl.prev }) {
		return sl.until
	}
	return sl.lent
}

// firstLoad is what the first load of a tenure starts from instead of a
// read of its own: the state the previous owner handed the group off in,
// or else the group as a confirmation read it since the tenure began
// (routed.confirm).
type firstLoad struct {
	handoff *handoffState
	read    *GroupState
}

// takeFirstLoad returns, for the first load of this node's tenure of
// group g, the state the tenure released just before it was handed off
// in, or else the group as a confirmation read it in this tenure.
//
// HAZARD: the first load only. The state is the group as it was at the
// release or the read; once this node has loaded the group in this
// tenure (from it, or by a read when the release came later than the
// load), it may have handed out values above it, and a load from it
// again would hand them out twice. Later loads read the group from etcd.
func (s *routeState) takeFirstLoad(g int) firstLoad {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &s.mu.slots[g]
	if !sl.mine || sl.loaded {
		return firstLoad{}
	}
	sl.loaded = true
	for _, r := range s.mu.released[g] {
		if sl.prev.Node != "" && r.t == sl.prev && r.state != nil {
			return firstLoad{handoff: r.state}
		}
	}
	if sl.read != nil && s.src.Mono() < sl.readAt+2*s.delay {
		// A read older than the tenure's wait (a delay) and then some is
		// not used: a compare on its revision is the only guard, and the
		// fewer writes that could land after it the better.
		return firstLoad{read: sl.read}
	}
	return firstLoad{}
}

// toRead returns the groups a confirmation may read for their tenure's
// first load: the newest table gives them to this node, and none was
// loaded, or read so, in its tenure.
func (s *routeState) toRead() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.suspended || s.mu.reg == 0 {
		return nil
	}
	var out []int
	for g := range s.mu.slots {
		if sl := &s.mu.slots[g]; sl.mine && !sl.loaded && sl.read == nil {
			out = append(out, g)
		}
	}
	return out
}

// readSeen keeps groups a confirmation read along with table t, for the
// first load of their tenure: only where t began the tenure this node
// holds now (the read came after every write of the tenures before that
// could succeed, since each compares the table it was made under). A
// first load from such a read writes only if the group is still at the
// revision read, and serves nothing before that write.
func (s *routeState) readSeen(t *table, groups map[int]GroupState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for g, st := range groups {
		if g < 0 || g >= len(s.mu.slots) || g >= len(t.since) {
			continue
		}
		sl := &s.mu.slots[g]
		if sl.mine && !sl.loaded && sl.read == nil && sl.since == t.since[g] && t.Owners[g] == s.name {
			sl.read, sl.readAt = &st, s.src.Mono()
		}
	}
}

// activatingError is a group this node will serve once its activation
// delay has passed or its previous owner has released it. It wraps
// ErrUnavailable; wait is closed when the group activates or moves away.
type activatingError struct {
	group int
	left  time.Duration
	wait  <-chan struct{}
}

func (e *activatingError) Error() string {
	return fmt.Sprintf("%v: group %d is activating (at most %v left, sooner if its previous owner releases it)", ErrUnavailable, e.group, e.left.Round(time.Millisecond))
}

func (e *activatingError) Unwrap() error { return ErrUnavailable }

// claimFor returns the claim under which group g may be served now, or
// why not: a *NotOwnerError when the newest table gives g to another
// node, a *NotHomeError for a group another datacenter's store serves, an
// *activatingError while it activates, an error wrapping ErrUnavailable
// otherwise.
func (s *routeState) claimFor(g int) (Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
	}
	if s.homeOnly != "" {
		if h := s.homes.home(g); h != s.homeOnly {
			return nil, &NotHomeError{Group: g, Datacenter: h}
		}
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
		return nil, fmt.Errorf("%w: node %s is not registered, or its table gives the group to an earlier incarnation", ErrUnavailable, s.name)
	}
	if s.mu.suspended {
		return nil, fmt.Errorf("%w: node %s's lease passed its deadline without a renewal; resuming it", ErrUnavailable, s.name)
	}
	now := s.src.Mono()
	if sl.claim == nil {
		// HAZARD: not before the activation delay has passed since the
		// table was first seen, unless the previous tenure was released:
		// until then its owner may still serve.
		left := sl.observed + s.delay - now
		if sl.wait == nil {
			// Activatable a moment ago; waiters go on waiting with a fresh
			// channel until the condition holds again.
			sl.wait = make(chan struct{})
		}
		early := left > 0
		if early && !s.prevEndedLocked(g, sl) {
			return nil, &activatingError{group: g, left: left, wait: sl.wait}
		}
		until := s.rightLocked(g, sl)
		if until <= now {
			return nil, &activatingError{group: g, left: 0, wait: sl.wait}
		}
		sl.claim = newRoutedClaim(s.src, g, tenure{Node: s.name, Reg: s.mu.reg, Since: sl.since}, until, s.proof(t.rev))
		sl.activated = true
		if early && sl.over {
			s.vouched.Add(1)
		}
		if sl.wait != nil {
			close(sl.wait)
			sl.wait = nil
		}
	}
	if h := sl.claim.Headroom(); h <= 0 {
		return nil, fmt.Errorf("%w: node %s has not confirmed its routing for %v", ErrUnavailable, s.name, -h)
	}
	return sl.claim, nil
}

// activatable returns the groups that may be activated now and have not
// been handed to the loader yet, marking them so, and the next moment a
// slot's delay ends (0: none pending).
func (s *routeState) activatable() (groups []int, next time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.suspended {
		return nil, 0
	}
	now := s.src.Mono()
	for g := range s.mu.slots {
		sl := &s.mu.slots[g]
		if !sl.mine || sl.claim != nil || sl.preloaded {
			continue
		}
		at := sl.observed + s.delay
		if (now >= at || s.prevEndedLocked(g, sl)) && s.rightLocked(g, sl) > now {
			sl.preloaded = true
			groups = append(groups, g)
			// Calls waiting for the group claim it themselves now, rather
			// than wait for the background load, which may be queued
			// behind other groups' (a node given many at once).
			if sl.wait != nil {
				close(sl.wait)
				sl.wait = nil
			}
			continue
		}
		if now < at && (next == 0 || at < next) {
			next = at
		}
	}
	return groups, next
}

// addressOf returns where tenure p's node answers, if table t or the
// table before it (old, may be nil) names that incarnation: a node that
// handed every group away is no longer among t's members.
func addressOf(p tenure, t, old *table) string {
	if p.Node == "" {
		return ""
	}
	for _, tb := range []*table{t, old} {
		if tb == nil {
			continue
		}
		if m, ok := tb.members[p.Node]; ok && m.Reg == p.Reg && m.Address != "" {
			return m.Address
		}
	}
	return ""
}

// pullItem is a group whose previous tenure this node asks its owner to
// release directly (routed.pull).
type pullItem struct {
	group int
	prev  tenure
}

// toPull returns, by the address of their previous owner, the groups
// this node waits for (given to it, not activated, their previous tenure
// neither released nor vouched over, the delay not passed) that it has
// not asked for yet, and marks them asked: once a tenure.
func (s *routeState) toPull() map[string][]pullItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.reg == 0 || s.mu.suspended {
		return nil
	}
	now := s.src.Mono()
	var out map[string][]pullItem
	for g := range s.mu.slots {
		sl := &s.mu.slots[g]
		if !sl.mine || sl.pulled || sl.claim != nil || sl.repeated || sl.prevAddr == "" || sl.prev.Node == s.name ||
			now >= sl.observed+s.delay || s.prevEndedLocked(g, sl) {
			continue
		}
		sl.pulled = true
		if out == nil {
			out = map[string][]pullItem{}
		}
		out[sl.prevAddr] = append(out[sl.prevAddr], pullItem{group: g, prev: sl.prev})
	}
	return out
}

// tenureEnded reports whether this node's tenure t of group g has ended
// (a table moved the group, or the registration ended), and otherwise
// returns a channel closed at the next change.
func (s *routeState) tenureEnded(g int, t tenure) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g < 0 || g >= len(s.mu.slots) {
		return true, nil
	}
	sl := &s.mu.slots[g]
	if s.mu.reg == t.Reg && sl.mine && sl.since == t.Since {
		return false, s.mu.tick
	}
	return true, nil
}

// startPull finds tenure t of group g among the releases not yet
// written and marks it pulling, so that no release is written for it
// until pulledDone: its state is being handed over directly. It reports
// false if there is none (the tenure ended before its activation
// condition held, its release was written already, or it is not this
// incarnation's).
func (s *routeState) startPull(g int, t tenure) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.mu.ended {
		if r := &s.mu.ended[i]; r.group == g && r.t == t && !r.pulling && !r.pulled {
			r.pulling = true
			return true
		}
	}
	return false
}

// pulledDone lets the release of tenure t of group g, handed over
// directly, be written at once.
func (s *routeState) pulledDone(g int, t tenure) {
	s.mu.Lock()
	for i := range s.mu.ended {
		if r := &s.mu.ended[i]; r.group == g && r.t == t {
			r.pulling, r.pulled = false, true
		}
	}
	s.mu.Unlock()
	s.changed()
}

// dueReleases returns, and forgets, the tenures to release now: those
// not held back for their next owner to ask for (see release), and the
// moment the first held one is due (0: none held).
func (s *routeState) dueReleases() ([]release, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.src.Mono()
	superseded := s.supersededLocked()
	var due []release
	var next time.Duration
	kept := s.mu.ended[:0]
	for _, r := range s.mu.ended {
		switch {
		case superseded(r) && !r.pulling: // one being handed over is kept until it is
		case r.pulled || (r.hold <= now && !r.pulling):
			s.mu.releasedSince[r.group] = max(s.mu.releasedSince[r.group], r.t.Since)
			due = append(due, r)
		default:
			kept = append(kept, r)
			at := r.hold
			if r.pulling {
				at = now + time.Millisecond // being handed over: due in a moment
			}
			if next == 0 || at < next {
				next = at
			}
		}
	}
	s.mu.ended = kept
	return due, next
}

// releases returns, and forgets, the tenures to release.
func (s *routeState) releases() []release {
	s.mu.Lock()
	defer s.mu.Unlock()
	superseded := s.supersededLocked()
	var out []release
	for _, r := range s.mu.ended {
		if !superseded(r) {
			s.mu.releasedSince[r.group] = r.t.Since
			out = append(out, r)
		}
	}
	s.mu.ended = nil
	return out
}

// supersededLocked returns whether a release queued now is superseded:
// only the newest release of each group is written, since an older one,
// written after it (held back for its next owner, or written in parallel
// and landing last), would hide it; its tenure ended before the newer
// one began anyway. Newest among those queued, and not older than one
// that came due already.
func (s *routeState) supersededLocked() func(release) bool {
	newest := map[int]uint64{}
	for _, r := range s.mu.ended {
		newest[r.group] = max(newest[r.group], r.t.Since)
	}
	return func(r release) bool {
		return r.t.Since < newest[r.group] || r.t.Since < s.mu.releasedSince[r.group]
	}
}

// requeue puts back releases that could not be written.
func (s *routeState) requeue(r []release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range r {
		// A handover under way when the release was taken says it is done
		// to a queue that no longer holds it: due as it is.
		r[i].pulling = false
	}
	s.mu.ended = append(r, s.mu.ended...)
}

// waiting reports whether some slot waits for a release marker (its
// activation delay not yet over, a previous tenure known).
func (s *routeState) waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.src.Mono()
	for g := range s.mu.slots {
		sl := &s.mu.slots[g]
		if sl.mine && sl.claim == nil && sl.prev.Node != "" && now < sl.observed+s.delay && !s.prevEndedLocked(g, sl) {
			return true
		}
	}
	return false
}

// owned returns how many groups the newest table gives this incarnation.
func (s *routeState) owned() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sl := range s.mu.slots {
		if sl.mine {
			n++
		}
	}
	return n
}

// counts returns how many groups the newest table gives this node, how
// many of those wait their activation delay (neither the delay over nor
// their previous tenure released), and when the first of those ends.
func (s *routeState) counts() (owned, activating int, left time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.src.Mono()
	for g := range s.mu.slots {
		sl := &s.mu.slots[g]
		if !sl.mine {
			continue
		}
		owned++
		if sl.claim == nil && now < sl.observed+s.delay && !s.prevEndedLocked(g, sl) {
			activating++
			if l := sl.observed + s.delay - now; left == 0 || l < left {
				left = l
			}
		}
	}
	return owned, activating, left
}

// ready says why the node cannot answer now, or nil: registered, with a
// table, no group waiting its activation delay, and its right to serve
// its groups confirmed.
func (s *routeState) ready() error {
	owned, activating, left := s.counts()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.mu.closed:
		return ErrClosed
	case s.mu.reg == 0:
		return fmt.Errorf("node %s is not registered", s.name)
	case s.mu.suspended:
		return fmt.Errorf("node %s's lease passed its deadline without a renewal; resuming it", s.name)
	case s.mu.tbl == nil:
		return fmt.Errorf("node %s has no routing table yet", s.name)
	case activating > 0:
		return fmt.Errorf("%d of its %d groups are activating (the first in %v)", activating, owned, left.Round(time.Millisecond))
	case s.mu.tbl.members[s.name].Reg != s.mu.reg && slices.Contains(s.mu.tbl.Owners, s.name):
		return fmt.Errorf("the routing table gives node %s's groups to its earlier registration: waiting for the arbiter to give them to this one", s.name)
	}
	now := s.src.Mono()
	for g := range s.mu.slots {
		sl := &s.mu.slots[g]
		if until := s.rightLocked(g, sl); sl.mine && until <= now {
			return fmt.Errorf("node %s has not confirmed its routing table for %v", s.name, (now - until).Round(time.Millisecond))
		}
	}
	return nil
}

// routedClaim is a node's right to serve one group during one tenure:
// extended by every confirmation that still gives the node the tenure,
// ended when a table moves it or the registration ends. Safe for
// concurrent use.
type routedClaim struct {
	group int
	t     tenure          // the tenure it is a right of
	dl    *clock.Deadline // ended just before done closes
	proof atomic.Pointer[[]clientv3.Cmp]
	done  chan struct{}
	once  sync.Once
}

var (
	_ Claim     = (*routedClaim)(nil)
	_ deadlined = (*routedClaim)(nil)
)

func newRoutedClaim(src clock.Source, g int, t tenure, until time.Duration, proof []clientv3.Cmp) *routedClaim {
	c := &routedClaim{group: g, t: t, dl: clock.NewDeadline(src, until), done: make(chan struct{})}
	c.proof.Store(&proof)
	return c
}

func (c *routedClaim) Proof() []clientv3.Cmp { return *c.proof.Load() }
func (c *routedClaim) Done() <-chan struct{} { return c.done }

// Headroom is zero once the claim has ended: the deadline ends before
// Done closes, and an ended deadline is never extended.
func (c *routedClaim) Headroom() time.Duration   { return c.dl.Headroom() }
func (c *routedClaim) deadline() *clock.Deadline { return c.dl }

// extend moves the deadline to until if later.
func (c *routedClaim) extend(until time.Duration) { c.dl.Extend(until) }

func (c *routedClaim) setProof(p []clientv3.Cmp) { c.proof.Store(&p) }

func (c *routedClaim) end() {
	c.once.Do(func() {
		c.dl.End()
		close(c.done)
	})
}
