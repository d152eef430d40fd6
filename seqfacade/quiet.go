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
// its transaction and only when it succeeds, so each right to serve a
// node holds comes from a confirmation whose put etcd recorded. Every node
// watches those keys (the arbiter role may come to it) and notes, for
// each node, the newest ModRevision and the moment it first learned of it:
// the put was processed before then. A tenure's owner has therefore no
// right left from delay after that moment (its right lasts delay - margin
// from a send that came before the put), if no put of its came after; the
// arbiter's table write compares the key's ModRevision to make sure of
// that. The tenures before it ended with the table that began it; their
// rights are over delay after the moment this node first saw that table
// version (or a later one). Safe for concurrent use.
type quiet struct {
	delay time.Duration

	mu struct {
		sync.Mutex
		confirmed map[string]sighting // by node name
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

func newQuiet(delay time.Duration) *quiet {
	q := &quiet{delay: delay}
	q.mu.confirmed = map[string]sighting{}
	return q
}

// confirmSeen records that node's confirmed key had ModRevision rev, as
// learned at now (read after the answer arrived).
func (q *quiet) confirmSeen(node string, rev int64, now time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s, ok := q.mu.confirmed[node]; !ok || rev > s.rev {
		q.mu.confirmed[node] = sighting{rev, now}
	}
}

// confirmsRead records a read of every confirmed key at revision read,
// learned at now: revs by node name. A key the read did not find (never
// written, or deleted by hand) vouches for nothing until it is put again.
func (q *quiet) confirmsRead(revs map[string]int64, read int64, now time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for node, s := range q.mu.confirmed {
		if _, ok := revs[node]; !ok && s.rev != 0 && s.rev <= read {
			q.mu.confirmed[node] = sighting{0, now}
		}
	}
	for node, rev := range revs {
		if s, ok := q.mu.confirmed[node]; !ok || rev > s.rev {
			q.mu.confirmed[node] = sighting{rev, now}
		}
	}
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

// tableAt returns when a table of version v or later was first seen: v
// committed before then. ok is false for a version not seen yet.
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
	if !ok || !known || c.rev == 0 || p.Since == 0 {
		return false
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
