package seqfacade

import (
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// quiet is what a node has learned, on its own monotonic clock, of when
// the other nodes last confirmed and of when each table version was
// committed: enough for the arbiter to vouch, in the table it writes,
// that a group's previous tenure has no right to serve left, so that its
// new owner serves at once after a crash as it does after a handoff
// (docs/seq-failover.md, "After a crash").
//
// Every confirmation (rule 1) also puts <prefix>/seq/confirmed/<name>, in
// its transaction and only when it succeeds, with the registration it
// confirmed as the value, so each right to serve an incarnation holds
// comes from a confirmation whose put etcd recorded. Every node watches
// those keys (the arbiter role may come to it) and notes, for each node,
// the newest ModRevision, its registration and the moment it first
// learned of it: the put was processed before then. Only a put of the
// very incarnation whose tenure ends counts: a key left by an earlier
// incarnation says nothing of a later one, which may run a version that
// does not put it. A tenure's owner has therefore no right left from
// delay after that moment (its right lasts delay - margin from a send
// that came before the put), if no put of its came after; the arbiter's
// table write compares the key's ModRevision to make sure of that. The tenures before it ended with the table that began it; their
// rights are over delay after the moment this node first saw that table
// version (or a later one).
//
// The same knowledge tells the arbiter which nodes have gone silent: a
// node that has put nothing for a lease TTL is as good as gone (its
// right to serve ran out long before), and the arbiter moves its groups
// then, without waiting for etcd to expire its lease, which a leader
// election lengthens and a 500 ms sweep delays (see silent). Safe for
// concurrent use.
type quiet struct {
	delay time.Duration
	grace time.Duration // how long nodes get to confirm after this one's outage

	mu struct {
		sync.Mutex
		// self: this node's last successful confirmation, and the first
		// of its current run (after a gap longer than grace).
		selfLast, selfSince time.Duration
		confirmed           map[string]confirmSighting // by node name
		// tables are versions seen, each with the moment it was first
		// seen, in increasing order of both: a table of version v or
		// later seen at t means v committed before t.
		tables []sighting
	}
}

// sighting is a revision (or a table version) and when this node first
// learned of it.
type sighting struct {
	rev int64
	at  time.Duration
}

// confirmSighting is a confirm key's put as learned of: its ModRevision,
// when, and the registration (CreateRevision) of the incarnation that put
// it (0: unreadable).
type confirmSighting struct {
	sighting
	reg int64
}

// confirmRead is a confirm key as read: ModRevision and registration.
type confirmRead struct{ rev, reg int64 }

// newQuiet returns a node's quiet: delay is the activation delay; a
// node's confirmations go every confirmEvery, each answered within
// timeout, which bounds the gap between two of its own (grace).
func newQuiet(delay, confirmEvery, timeout time.Duration) *quiet {
	q := &quiet{delay: delay, grace: 2*confirmEvery + timeout}
	q.mu.confirmed = map[string]confirmSighting{}
	return q
}

// selfConfirmed records a confirmation of this node's, answered at now.
func (q *quiet) selfConfirmed(now time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mu.selfLast == 0 || now-q.mu.selfLast > q.grace {
		q.mu.selfSince = now
	}
	q.mu.selfLast = now
}

// silent reports whether node's incarnation reg has put no confirmation
// for ttl at now, as judged by a node that can judge: one whose own
// confirmations have gone through without a gap for grace, so that an outage of its own, or of etcd's (an election: nobody
// confirms), is not taken for the others' silence. An incarnation never
// seen confirming (just registered, or of a version that does not put its
// confirm key) is never judged silent: its lease alone says it is gone.
// It also returns the put it judged on, and when node would be silent
// if nothing changes (0: not known).
func (q *quiet) silent(node string, reg int64, ttl, now time.Duration) (gone bool, at time.Duration, last confirmRead) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c, ok := q.mu.confirmed[node]
	if q.mu.selfLast == 0 || now-q.mu.selfLast > q.grace || !ok || c.rev == 0 || c.reg != reg {
		return false, 0, confirmRead{}
	}
	at = max(c.at+ttl, q.mu.selfSince+q.grace)
	return now >= at, at, confirmRead{c.rev, c.reg}
}

// confirmSeen records that node's confirm key was put at revision rev by
// registration reg, as learned at now (read after the answer arrived).
func (q *quiet) confirmSeen(node string, c confirmRead, now time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s, ok := q.mu.confirmed[node]; !ok || c.rev > s.rev {
		q.mu.confirmed[node] = confirmSighting{sighting{c.rev, now}, c.reg}
	}
}

// confirmsRead records a read of every confirm key at revision read,
// learned at now, by node name. A key the read did not find (never
// written, or deleted by hand) vouches for nothing until it is put again;
// one found below the revision remembered, which was at or below read
// (etcd restored from a backup under a running node), replaces it.
func (q *quiet) confirmsRead(keys map[string]confirmRead, read int64, now time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for node, s := range q.mu.confirmed {
		if _, ok := keys[node]; !ok && s.rev != 0 && s.rev <= read {
			q.mu.confirmed[node] = confirmSighting{sighting{0, now}, 0}
		}
	}
	for node, c := range keys {
		if s, ok := q.mu.confirmed[node]; !ok || c.rev > s.rev || (c.rev < s.rev && s.rev <= read) {
			q.mu.confirmed[node] = confirmSighting{sighting{c.rev, now}, c.reg}
		}
	}
}

// resetTables forgets the table versions seen: a table no arbiter wrote
// (written back by hand) may carry any version, and the order of
// versions no longer follows the order of commits across it.
func (q *quiet) resetTables() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mu.tables = nil
}

// tableSeen records that a table of version v was seen at now (read
// after it arrived).
func (q *quiet) tableSeen(v uint64, now time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.mu.tables
	if n := len(t); n > 0 && uint64(t[n-1].rev) >= v {
		return // an earlier sighting of a later version bounds it already
	}
	// Sightings a delay old say no more than the newest of them: keep
	// that one (a later moment than the others', so still an upper
	// bound of every version it stands for).
	i := 0
	for i+1 < len(t) && t[i+1].at+q.delay <= now {
		i++
	}
	q.mu.tables = append(slices.Delete(t, 0, i), sighting{int64(v), now})
}

// tableAtLocked returns when a table of version v or later was first
// seen: v committed before then. ok is false for a version not seen yet.
func (q *quiet) tableAtLocked(v uint64) (time.Duration, bool) {
	for _, s := range q.mu.tables {
		if uint64(s.rev) >= v {
			return s.at, true
		}
	}
	return 0, false
}

// vouching is one round's use of quiet by the arbiter: the tenures it
// vouches for, the comparisons the table write must carry for them, and
// the next moment a tenure not vouched for yet could be.
type vouching struct {
	q    *quiet
	now  time.Duration
	revs map[string]int64 // the confirmed key's ModRevision, by node vouched for
	next time.Duration    // 0: none pending
}

// vouching starts a round at now (read before the table is written).
func (q *quiet) vouching(now time.Duration) *vouching {
	return &vouching{q: q, now: now, revs: map[string]int64{}}
}

// over reports whether tenure p, the one before a group's tenure that
// began with version since, has no right to serve left at v.now: its
// owner's last confirmation and the table that began p were both learned
// of at least the activation delay ago. A tenure that began more than a
// delay ago is not asked about again: its owner serves by now.
//
// HAZARD: only with the comparisons of cmps in the table's write: they
// make sure no confirmation of p's owner came after the one learned of.
func (v *vouching) over(since uint64, p tenure) bool {
	q := v.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if at, ok := q.tableAtLocked(since); ok && at+q.delay <= v.now {
		return false // the new owner's own delay is over
	}
	began, ok := q.tableAtLocked(p.Since)
	c, known := q.mu.confirmed[p.Node]
	if !ok || !known || c.rev == 0 || c.reg != p.Reg || p.Since == 0 {
		return false // HAZARD: only a put of p's own incarnation counts
	}
	if rev, ok := v.revs[p.Node]; ok && rev != c.rev {
		return false // cannot happen within one round; never two comparisons
	}
	at := max(began, c.at) + q.delay
	if at > v.now {
		if v.next == 0 || at < v.next {
			v.next = at
		}
		return false
	}
	v.revs[p.Node] = c.rev
	return true
}

// cmps returns the comparisons the table write must carry: every node
// vouched for has confirmed no more since (key is the confirmed key of a
// node name).
func (v *vouching) cmps(key func(node string) string) []clientv3.Cmp {
	var out []clientv3.Cmp
	for node, rev := range v.revs {
		out = append(out, clientv3.Compare(clientv3.ModRevision(key(node)), "=", rev))
	}
	return out
}
