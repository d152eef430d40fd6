package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultResolution is how often a [Coarse] refreshes when given zero.
const DefaultResolution = time.Millisecond

// Coarse is a [Slewing] clock cached in an atomic word and refreshed by one
// goroutine every resolution.
//
// It exists because reading the clock is too slow for the generator: a
// time.Now costs about 47 ns on the reference 2-core machine, more than the
// whole budget of 40 ns per ID at 25 M IDs/s, and Slewing adds a mutex on
// top. UnixNano here is one atomic load.
//
// Its value lags the exact ID clock by at most about one resolution plus
// the refresh goroutine's scheduling delay. That only makes ID timestamps
// slightly older; it never makes the value go back, because the cache only
// ever moves up to values the Slewing clock has returned, and those never
// decrease.
//
// Safe for concurrent use.
type Coarse struct {
	now        atomic.Int64 // the ID clock, Unix nanoseconds; only grows
	s          *Slewing
	resolution time.Duration

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewCoarse reads s once, so that UnixNano is valid on return, and starts
// the goroutine that refreshes it every resolution (DefaultResolution when
// zero or negative). s must not be nil. Call Close to stop the goroutine.
func NewCoarse(s *Slewing, resolution time.Duration) *Coarse {
	if resolution <= 0 {
		resolution = DefaultResolution
	}
	c := &Coarse{
		s:          s,
		resolution: resolution,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	c.now.Store(s.UnixNano())
	go c.run()
	return c
}

// UnixNano returns the cached ID clock in Unix nanoseconds. It never
// returns less than it returned before. It is the generator's hot path:
// keep it a single atomic load that the compiler inlines.
func (c *Coarse) UnixNano() int64 { return c.now.Load() }

// After returns the Slewing clock's After.
func (c *Coarse) After(d time.Duration) <-chan struct{} { return c.s.After(d) }

// Raise raises the underlying Slewing clock (see [Slewing.Raise]) and
// refreshes the cache before returning.
//
// HAZARD: call this, not Slewing.Raise, when IDs are read through this
// Coarse. Raising the Slewing clock alone leaves the cache below the
// watermark until the next tick, and an ID issued in that window could
// repeat one issued by the previous holder of the worker ID.
func (c *Coarse) Raise(unixNano int64) {
	c.s.Raise(unixNano)
	c.refresh()
}

// Refresh reads the Slewing clock into the cache now, without waiting for
// the next tick.
func (c *Coarse) Refresh() { c.refresh() }

// Close stops the refresh goroutine and waits for it to end. UnixNano
// keeps returning the last value read. Close is idempotent.
func (c *Coarse) Close() {
	c.closeOnce.Do(func() { close(c.stop) })
	<-c.done
}

func (c *Coarse) run() {
	defer close(c.done)
	t := time.NewTicker(c.resolution)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.refresh()
		}
	}
}

// refresh moves the cache up to a fresh Slewing reading.
//
// HAZARD: the cache has several writers (the ticker, Raise, Refresh). Each
// reads the Slewing clock and then stores, so a writer that read earlier
// can store later; a plain Store would then move the cache back. The
// compare-and-swap loop only ever moves it up.
func (c *Coarse) refresh() {
	v := c.s.UnixNano()
	for {
		old := c.now.Load()
		if v <= old || c.now.CompareAndSwap(old, v) {
			return
		}
	}
}
