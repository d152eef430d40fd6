package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Deadline is a moment of a Source's monotonic time by which its holder
// must stop acting (a lease's self-fencing deadline, a claim's right to
// serve), made to be checked on every call of a hot path: [Deadline.Live]
// reads the clock each time it is called, as a check at request time
// must.
//
// The deadline only moves later ([Deadline.Extend]) until it ends for
// good ([Deadline.End]). The zero value is not usable; call [NewDeadline].
// Safe for concurrent use.
type Deadline struct {
	src   Source
	at    atomic.Int64 // monotonic nanoseconds; only grows
	ended atomic.Bool
	mu    sync.Mutex // serialises Extend and End, so none moves at after End
}

// NewDeadline returns a deadline at monotonic time at on src.
func NewDeadline(src Source, at time.Duration) *Deadline {
	d := &Deadline{src: src}
	d.at.Store(int64(at))
	return d
}

// At returns the deadline, in the Source's monotonic time.
func (d *Deadline) At() time.Duration { return time.Duration(d.at.Load()) }

// Extend moves the deadline to at if that is later. It does nothing once
// the deadline has ended.
func (d *Deadline) Extend(at time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ended.Load() && int64(at) > d.at.Load() {
		d.at.Store(int64(at))
	}
}

// End ends the deadline now and for good: Live reports false from now on
// and Extend does nothing.
func (d *Deadline) End() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ended.Store(true)
}

// Ended reports whether End was called.
func (d *Deadline) Ended() bool { return d.ended.Load() }

// Headroom reads the Source's monotonic clock and returns the time left
// before the deadline: zero or less once it has passed, zero once ended.
func (d *Deadline) Headroom() time.Duration {
	at := time.Duration(d.at.Load())
	if d.ended.Load() {
		return 0
	}
	return at - d.src.Mono()
}

// Live reports, reading the clock now, whether the deadline has neither
// passed nor ended: the same answer as Headroom() > 0. A caller that
// reads Live after acting (after a compare-and-swap, say) learns that it
// acted before the deadline.
//
// HAZARD: Live must read the clock at every call, never a flag some
// goroutine clears at the deadline nor a cached reading: a process that
// was paused (GC, SIGSTOP, descheduled, its VM frozen) may run its
// callers before the goroutine that would clear the flag, and a value
// handed out then could come after another node took over. How far that
// argument holds depends on what the Source's monotonic clock counts: on
// the host's clock see [Real].
func (d *Deadline) Live() bool {
	return !d.ended.Load() && d.src.Mono() < time.Duration(d.at.Load())
}
