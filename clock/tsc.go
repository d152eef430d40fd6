package clock

import (
	"sync"
	"time"
)

// Calibration of the time-stamp counter against the monotonic clock.
const (
	// tscMinSpan is the shortest calibration interval used: a rate
	// measured over less says too little.
	tscMinSpan = 10 * time.Millisecond
	// tscSourceRecheck spaces the reads of the kernel's clocksource.
	tscSourceRecheck = 100 * time.Millisecond
	// tscDisagree: a rate measured since the previous arming that is more
	// than this fraction away from the long-run rate means the counter
	// and the monotonic clock no longer move together, and no window is
	// armed. NTP daemons change the monotonic clock's rate by far less
	// (chrony slews at 8.3% at most).
	tscDisagree = 0.25
	// tscShare is the share of the time left before a deadline that a
	// window covers, at the calibrated rate (see the HAZARD in
	// [Deadline.Live]).
	tscShare = 0.5
	// tscReorder bounds how long before the instructions ahead of it a
	// plain RDTSC may read the counter, and is taken off every window.
	// Neither vendor documents a bound: this is an assumption about the
	// microarchitecture. An out-of-order core reads the counter early only
	// while those instructions are in flight together with it, and what
	// could stall them for long (an interrupt, a fault, a VM exit, a
	// signal, a context switch) is taken at an instruction boundary,
	// discarding the early read, which runs again afterwards. What is
	// left is the latency of the instructions in flight: a contended or
	// remote cache line, a frequency transition, tens of microseconds at
	// worst. A millisecond is far above that, and the window covers only
	// half the time left anyway.
	tscReorder = time.Millisecond
)

// tscWindow is a deadline in counter ticks: the check passes while
// counter - start < span. It is immutable once published.
type tscWindow struct {
	start uint64 // the counter, read before the monotonic clock at arming
	span  uint64 // ticks
}

// holds reports whether counter reading t lies in the window; a reading
// below start (the counter went back) wraps to a huge difference and
// fails.
func (w *tscWindow) holds(t uint64) bool { return t-w.start < w.span }

// tscPair is a monotonic reading bracketed by two counter readings: the
// counter stood at lo or more when mono was read, and at hi or less.
type tscPair struct {
	lo, hi uint64
	mono   time.Duration
}

// tscClock relates the time-stamp counter to a Real clock's monotonic
// time, so that a [Deadline] on that clock can be checked by reading the
// counter alone. It is used only when the processor has an invariant
// counter. Safe for concurrent use.
type tscClock struct {
	read       func() uint64        // the counter, ordered (RDTSCP): calibration brackets need it
	mono       func() time.Duration // the Real clock's Mono
	kernelUses func() bool          // the kernel's clocksource is the counter

	mu struct {
		sync.Mutex
		started  bool
		first    tscPair       // the long-run calibration starts here
		last     tscPair       // the last pair a rate was measured up to
		checked  time.Duration // when kernelUses was last asked
		sourceOK bool          // its answer
	}
}

func newTSCClock(mono func() time.Duration) *tscClock {
	return &tscClock{read: readTSCOrdered, mono: mono, kernelUses: kernelUsesTSC}
}

func (t *tscClock) pair() tscPair {
	lo := t.read()
	m := t.mono()
	hi := t.read()
	return tscPair{lo: lo, hi: hi, mono: m}
}

// window returns a window that closes no later than monotonic time at,
// or nil when none can be armed now; then retry > 0 tells when to try
// again because calibration has just begun.
//
// The rate is a lower bound of counter ticks per monotonic nanosecond:
// from the bracket of two pairs, the counter moved at least
// p.lo - first.hi while the monotonic clock moved p.mono - first.mono.
// It is the lower of the long-run rate and the rate since the last
// arming, and the window spans only tscShare of the time left at it.
func (t *tscClock) window(at time.Duration) (w *tscWindow, retry time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pair()
	if !t.sourceOKLocked(p.mono) {
		return nil, 0
	}
	f, l := t.mu.first, t.mu.last
	if !t.mu.started {
		t.mu.started, t.mu.first, t.mu.last = true, p, p
		return nil, tscMinSpan
	}
	if p.hi < p.lo || p.lo < f.hi || p.lo < l.hi {
		// The counter went back: calibrate afresh from here, at the
		// next arming.
		t.mu.first, t.mu.last = p, p
		return nil, 0
	}
	span := p.mono - f.mono
	if span < tscMinSpan {
		return nil, tscMinSpan - span
	}
	low := float64(p.lo-f.hi) / float64(span)
	high := float64(p.hi-f.lo) / float64(span)
	rate := low
	if rs := p.mono - l.mono; rs >= tscMinSpan {
		t.mu.last = p
		rlo := float64(p.lo-l.hi) / float64(rs)
		rhi := float64(p.hi-l.lo) / float64(rs)
		if rhi < low*(1-tscDisagree) || rlo > high*(1+tscDisagree) {
			return nil, 0
		}
		rate = min(rate, rlo)
	}
	left := at - p.mono
	if left <= 0 || rate <= 0 {
		return nil, 0
	}
	ticks := (float64(left)*tscShare - float64(tscReorder)) * rate
	if ticks < 1 {
		return nil, 0
	}
	if ticks >= 1<<63 {
		ticks = 1 << 63
	}
	return &tscWindow{start: p.lo, span: uint64(ticks)}, 0
}

// sourceOKLocked asks the kernel for its clocksource, at most every
// tscSourceRecheck.
func (t *tscClock) sourceOKLocked(now time.Duration) bool {
	if t.mu.checked == 0 || now-t.mu.checked >= tscSourceRecheck {
		t.mu.sourceOK = t.kernelUses()
		t.mu.checked = max(now, 1)
	}
	return t.mu.sourceOK
}
