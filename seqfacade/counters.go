package seqfacade

import (
	"sync"
	"sync/atomic"
)

// counters holds the cur_seq offsets of one section's uids: how many
// values each has taken above the section's base. Safe for concurrent
// use; a plain value of it is empty and sparse.
//
// It starts sparse, in small maps of the uids touched, and turns dense, an
// array of the section's every uid, once enough of them are touched:
//
//   - A population spread thin over a large uid space (two hundred million
//     users over 2^32 uids: a few thousand of a section's 100,000) would
//     otherwise touch a page of memory per uid: a page fault, about 7 µs on
//     a virtual machine, almost per call while the pages fill, and every
//     page of every section resident in the end, 8 bytes a uid of the
//     whole space (34 GB for 2^32) for 5% of it in use. Sparse, it costs
//     about 16 to 40 bytes a uid touched and no fault per uid.
//   - A dense population (a section of which a sixteenth or more is
//     touched) is cheaper as an array: 8 bytes a uid and a lock-free
//     compare-and-swap a call, as seqsvr keeps it.
type counters struct {
	n     int                             // uids in the section (uid 0 counted)
	dense atomic.Pointer[[]atomic.Uint64] // nil while sparse
	// touched counts the sparse entries; at denseAt the section turns
	// dense.
	touched atomic.Int64
	shards  [counterShards]counterShard
}

// counterShards spreads a sparse section's uids over maps with a lock
// each, so that calls on different uids rarely wait for each other.
const counterShards = 16

type counterShard struct {
	mu   sync.Mutex
	m    map[uint32]uint64
	high uint64   // the largest offset in m, kept by take under mu
	_    [40]byte // 64 bytes in all: a cache line of its own
}

func newCounters(n int) *counters { return &counters{n: n} }

// denseAt is the number of uids touched at which a section of n uids
// turns dense: a sixteenth, where the maps hold about as many bytes as
// the array would; a small section (tests have them) once 64 are, or all
// but one (uid 0 is never touched).
func denseAt(n int) int64 { return max(int64(n/16), int64(min(n-1, 64)), 1) }

// get returns uid i's offset.
func (c *counters) get(i uint64) uint64 {
	if d := c.dense.Load(); d != nil {
		return (*d)[i].Load()
	}
	sh := &c.shards[i%counterShards]
	sh.mu.Lock()
	if d := c.dense.Load(); d != nil { // turned dense meanwhile
		sh.mu.Unlock()
		return (*d)[i].Load()
	}
	v := sh.m[uint32(i)]
	sh.mu.Unlock()
	return v
}

// take raises uid i's offset by one if it is below limit (read at the
// moment of the raise), and returns the offset it had.
func (c *counters) take(i uint64, limit *atomic.Uint64) (uint64, bool) {
	if d := c.dense.Load(); d != nil {
		return takeDense(&(*d)[i], limit)
	}
	sh := &c.shards[i%counterShards]
	sh.mu.Lock()
	if d := c.dense.Load(); d != nil {
		sh.mu.Unlock()
		return takeDense(&(*d)[i], limit)
	}
	v, had := sh.m[uint32(i)]
	if v >= limit.Load() {
		sh.mu.Unlock()
		return 0, false
	}
	if sh.m == nil {
		sh.m = map[uint32]uint64{}
	}
	sh.m[uint32(i)] = v + 1
	sh.high = max(sh.high, v+1)
	sh.mu.Unlock()
	if !had && c.touched.Add(1) == denseAt(c.n) {
		c.densify()
	}
	return v, true
}

func takeDense(cur, limit *atomic.Uint64) (uint64, bool) {
	for {
		v := cur.Load()
		if v >= limit.Load() {
			return 0, false
		}
		if cur.CompareAndSwap(v, v+1) {
			return v, true
		}
	}
}

// densify turns the section dense: with every shard locked, the offsets
// move into the array, which takes over before any lock is released.
func (c *counters) densify() {
	for k := range c.shards {
		c.shards[k].mu.Lock()
	}
	if c.dense.Load() == nil {
		d := make([]atomic.Uint64, c.n)
		for k := range c.shards {
			for i, v := range c.shards[k].m {
				d[i].Store(v)
			}
			c.shards[k].m = nil
		}
		c.dense.Store(&d)
	}
	for k := range c.shards {
		c.shards[k].mu.Unlock()
	}
}

// highest returns the largest offset of the section's uids while it is
// sparse, which take keeps per shard under the shard's lock, so that it
// costs nothing to read; a dense section keeps none (its takes are lock-
// free), and highest then returns bound, a bound the caller knows. For a
// section whose group is unloaded (its limit 0), so that no take raises
// an offset after it looked, except ones whose values are never handed
// out (take).
func (c *counters) highest(bound uint64) uint64 {
	for k := range c.shards {
		c.shards[k].mu.Lock()
	}
	defer func() {
		for k := range c.shards {
			c.shards[k].mu.Unlock()
		}
	}()
	if c.dense.Load() != nil {
		return bound
	}
	var h uint64
	for k := range c.shards {
		h = max(h, c.shards[k].high)
	}
	return h
}

// bytes estimates the memory the offsets take: 8 bytes a uid dense, about
// 24 a uid touched sparse.
func (c *counters) bytes() int64 {
	if c.dense.Load() != nil {
		return 8 * int64(c.n)
	}
	return 24 * c.touched.Load()
}
