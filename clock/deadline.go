package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Deadline is a moment of a Source's monotonic time by which its holder
// must stop acting (a lease's self-fencing deadline, a claim's right to
// serve), made to be checked on every call of a hot path: [Deadline.Live]
// reads the clock each time it is called, as a check at request time must,
// but on the host's clock it usually reads the CPU's time-stamp counter
// instead of the monotonic clock: about 10 ns instead of 26 on the
// reference machine.
//
// The deadline only moves later ([Deadline.Extend]) until it ends for
// good ([Deadline.End]). The zero value is not usable; call [NewDeadline].
// Safe for concurrent use.
type Deadline struct {
	src Source
	tsc *tscClock // nil: every check reads src.Mono

	at    atomic.Int64 // monotonic nanoseconds
	ended atomic.Bool
	// win is the counter window armed for the current deadline, nil when
	// none is (see Live). Only mu's holder stores it.
	win atomic.Pointer[tscWindow]

	mu       sync.Mutex // serialises Extend, End and arming
	retrying bool       // a re-arming is scheduled (guarded by mu)
}

// NewDeadline returns a deadline at monotonic time at on src. Its fast
// check is armed when src is a [Real] (or a [Skewed] over one) on
// linux/amd64 with an invariant time-stamp counter, RDTSCP (for
// calibration), and the kernel
// computing monotonic time from that counter; with any other Source,
// [Manual] included, every check reads src.Mono.
func NewDeadline(src Source, at time.Duration) *Deadline {
	d := &Deadline{src: src, tsc: tscOf(src)}
	d.at.Store(int64(at))
	if d.tsc != nil {
		d.mu.Lock()
		d.armLocked()
		d.mu.Unlock()
	}
	return d
}

func tscOf(src Source) *tscClock {
	switch s := src.(type) {
	case *Real:
		return s.tsc
	case *Skewed:
		return tscOf(s.src) // its monotonic time is s.src's
	}
	return nil
}

// At returns the deadline, in the Source's monotonic time.
func (d *Deadline) At() time.Duration { return time.Duration(d.at.Load()) }

// Extend moves the deadline to at if that is later, and re-arms the fast
// check. It does nothing once the deadline has ended.
func (d *Deadline) Extend(at time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended.Load() {
		return
	}
	if int64(at) > d.at.Load() {
		d.at.Store(int64(at))
	}
	if d.tsc != nil {
		d.armLocked()
	}
}

// End ends the deadline now and for good: Live reports false from now on
// and Extend does nothing.
func (d *Deadline) End() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ended.Store(true)
	d.win.Store(nil)
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
// passed nor ended: the same answer as Headroom() > 0, at less cost when
// the fast check is armed. A caller that reads Live after acting (after a
// compare-and-swap, say) learns that it acted before the deadline.
//
// HAZARD: the fast check must never say "live" once the monotonic clock
// has reached the deadline, or a value could be handed out after another
// node took over; this is why it is as safe as reading the monotonic
// clock:
//
//   - It is a reading at request time, like Mono, not a flag some
//     goroutine clears, and the counter runs on whatever stalls the
//     process (GC, SIGSTOP, the host descheduling it), as the monotonic
//     clock does. The read is a plain RDTSC, which an out-of-order core
//     may execute before the caller's compare-and-swap completes: but
//     only while both are in flight together, since an interrupt, fault,
//     VM exit or signal in between discards the early read and executes
//     RDTSC again after it. The read is thus early by at most the latency
//     of the instructions in flight (no vendor documents a bound; tens of
//     microseconds at worst is the assumption), and every window is
//     shortened by tscReorder, a millisecond. (The ordered RDTSCP, which
//     waits for them, cost 20 ns here against 10: the whole sequence
//     call's budget. Calibration, which is rare, uses it.)
//   - The kernel computes CLOCK_MONOTONIC from this very counter (the
//     clocksource is "tsc", read at arming at most tscSourceRecheck old;
//     the processor's counter is invariant, from CPUID), so a counter
//     that misbehaves fools Mono alike. What the fast check adds is the
//     conversion of the deadline into ticks, armed as
//     tsc0 + ((at - mono0) * tscShare - tscReorder) * rate, where
//     tsc0 was read before mono0 (so mono0 is never earlier than the
//     moment of tsc0) and rate is a lower bound of ticks per monotonic
//     nanosecond (from bracketed readings, over the Real's life and since
//     the previous arming). Any error makes the window close early, never
//     late: it covers only half the time left, so it outlasts the
//     deadline only if the monotonic clock ran twice as fast against the
//     counter as when it was calibrated, where the design already
//     assumes clock rates within 20% (docs/seq-failover.md) and NTP
//     daemons slew by 8.3% at most.
//   - A reading below tsc0 (the counter went back) fails the window. At
//     arming, a clocksource other than "tsc", a counter that went back,
//     or a rate since the previous arming more than tscDisagree away from
//     the long-run rate arms no window; so do a Source that is not the
//     host's clock (a Manual in tests: behaviour unchanged), a processor
//     without an invariant counter or RDTSCP, and any other platform.
//   - A check outside the window, early or not, falls through to
//     Headroom, which reads Mono: a closed window costs time, never a
//     refusal.
//   - What arming cannot see is the kernel leaving the counter for
//     another clocksource after arming while the counter also drops below
//     half its rate (the kernel leaves it when it finds it unstable). The
//     window then lasts at most half the time left at arming, and a
//     holder that ends the deadline at its time (package lease does)
//     clears it.
//
// End clears the window before it returns, so a check that still loads
// one ran its load before End: the caller acted before End.
func (d *Deadline) Live() bool {
	if w := d.win.Load(); w != nil && w.holds(readTSC()) {
		return true
	}
	return d.Headroom() > 0
}

// armLocked computes the window for the current deadline, or clears it.
// While calibration is beginning it schedules another arming.
func (d *Deadline) armLocked() {
	w, retry := d.tsc.window(d.At())
	d.win.Store(w)
	if w == nil && retry > 0 && !d.retrying {
		d.retrying = true
		time.AfterFunc(retry, d.rearm)
	}
}

func (d *Deadline) rearm() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retrying = false
	if !d.ended.Load() {
		d.armLocked()
	}
}
