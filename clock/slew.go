package clock

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"
)

// Errors returned by the constructors of this package. Each is wrapped with
// details; test for it with errors.Is.
var (
	// ErrInvalidConfig means a configuration failed its Validate method.
	ErrInvalidConfig = errors.New("clock: invalid config")
	// ErrNilSource means a constructor was given a nil Source.
	ErrNilSource = errors.New("clock: nil source")
)

// Defaults of [SlewConfig], used where a field is zero.
const (
	DefaultBackRate      = 0.5
	DefaultStepThreshold = time.Millisecond

	// MaxForwardRate bounds SlewConfig.ForwardRate. A forward slew a
	// thousand times faster than time is following the step for every
	// practical purpose (use 0 for that), and the bound keeps the scaling
	// arithmetic far from overflow.
	MaxForwardRate = 1000
)

// SlewConfig sets how a [Slewing] clock reacts when the wall clock moves
// away from it. The zero value means the defaults. It is a plain value:
// copies share nothing, so it is safe for concurrent use once built.
type SlewConfig struct {
	// BackRate is how fast the ID clock closes a gap while it is ahead of
	// the wall clock, in seconds of gap per second of monotonic time: it
	// then advances at (1-BackRate) of monotonic speed, so it never stands
	// still and never goes back. A gap g takes g/BackRate to close.
	// Zero means DefaultBackRate (0.5); otherwise it must be in (0, 1).
	BackRate float64

	// ForwardRate is how fast the ID clock catches up while it is behind
	// the wall clock: it advances at (1+ForwardRate) of monotonic speed
	// until it meets the wall clock. Zero (the default) follows a step
	// forward at once. It must be in [0, MaxForwardRate].
	ForwardRate float64

	// StepThreshold is the smallest change of (wall - monotonic) between
	// two readings that counts as a step of the wall clock, and the smallest
	// distance from the wall clock that counts as slewing. Zero means
	// DefaultStepThreshold (1 ms); it must not be negative.
	//
	// The kernel's own frequency correction moves the wall clock by up to
	// 500 µs per second, so readings much further apart than a second may
	// count a correction as a step. That only affects the counters.
	StepThreshold time.Duration

	// HoldForward, when positive, holds a step forward of the wall clock
	// that takes the steps forward followed since the last check past it:
	// the ID clock goes on with monotonic time as if the step had not
	// happened, until [Slewing.Settle] releases it (the NTP check,
	// clock/ntp, does once a server confirms the stepped wall clock) or a
	// step back undoes it; a step forward after such a step back holds
	// again what it undid. Smaller steps are followed, but their sum since
	// the last check is bounded by HoldForward, however many there are. A
	// wrong step, a bad time source's, then moves the wall clock the ID
	// clock follows at most HoldForward past where the last check found
	// it (within its MaxOffset of NTP time), and no further; a true one
	// reaches it a check later. Without a check to release them, steps
	// would be held for ever: zero (the default) holds none.
	HoldForward time.Duration

	// StartHeld is held from the start: the ID clock starts that far
	// behind the wall clock, as if a step of StartHeld had been held.
	// `mig serve` sets it when NTP finds the wall clock ahead at start,
	// so that IDs are not dated by it. It must not be negative.
	StartHeld time.Duration
}

// withDefaults returns c with every zero field replaced by its default.
func (c SlewConfig) withDefaults() SlewConfig {
	if c.BackRate == 0 {
		c.BackRate = DefaultBackRate
	}
	if c.StepThreshold == 0 {
		c.StepThreshold = DefaultStepThreshold
	}
	return c
}

// Validate reports whether c is usable; the error wraps ErrInvalidConfig.
func (c SlewConfig) Validate() error {
	c = c.withDefaults()
	// The comparisons are written so that NaN fails them.
	if !(c.BackRate > 0 && c.BackRate < 1) {
		return fmt.Errorf("%w: BackRate %v is not in (0, 1)", ErrInvalidConfig, c.BackRate)
	}
	if 1-c.BackRate == 1 {
		// Below 2^-53 the rate rounds away: the clock would stay ahead of
		// the wall clock for ever.
		return fmt.Errorf("%w: BackRate %v is too small to slow the clock", ErrInvalidConfig, c.BackRate)
	}
	if !(c.ForwardRate >= 0 && c.ForwardRate <= MaxForwardRate) {
		return fmt.Errorf("%w: ForwardRate %v is not in [0, %d]", ErrInvalidConfig, c.ForwardRate, MaxForwardRate)
	}
	if c.StepThreshold < 0 {
		return fmt.Errorf("%w: StepThreshold %v is negative", ErrInvalidConfig, c.StepThreshold)
	}
	if c.HoldForward < 0 {
		return fmt.Errorf("%w: HoldForward %v is negative", ErrInvalidConfig, c.HoldForward)
	}
	if c.StartHeld < 0 {
		return fmt.Errorf("%w: StartHeld %v is negative", ErrInvalidConfig, c.StartHeld)
	}
	if c.StartHeld > 0 && c.HoldForward == 0 {
		return fmt.Errorf("%w: StartHeld %v without HoldForward: nothing would check it", ErrInvalidConfig, c.StartHeld)
	}
	return nil
}

// SlewStatus describes a [Slewing] clock, for metrics and health checks.
// It is a snapshot, a plain value that shares nothing with the clock, and
// safe for concurrent use.
type SlewStatus struct {
	// UnixNano is the ID clock at the last reading.
	UnixNano int64
	// Wall is the wall clock at the last reading.
	Wall time.Time
	// Offset is the ID clock minus the wall clock it follows (Wall less
	// Held) at the last reading: positive while the ID clock is ahead
	// (after a step back or a Raise).
	Offset time.Duration
	// Slewing is true while the ID clock is ahead of or behind the wall
	// clock it follows by more than the StepThreshold.
	Slewing bool
	// CatchUp estimates the monotonic time left until the ID clock meets
	// the wall clock at the configured rate; zero when not slewing.
	CatchUp time.Duration
	// StepsBack and StepsForward count the wall-clock steps seen.
	StepsBack, StepsForward uint64
	// LastStep is the most recent step seen: negative for a step back.
	LastStep time.Duration
	// Raises counts the Raise calls that moved the ID clock up.
	Raises uint64
	// Held is the part of the wall clock's steps forward that the ID clock
	// holds back (SlewConfig.HoldForward): the wall clock it follows is
	// the source's less Held. Unchecked is the sum of the smaller steps
	// forward it followed since the last check (Settle). HeldSteps counts
	// the steps held, and Released the checks that let them through.
	Held, Unchecked     time.Duration
	HeldSteps, Released uint64
}

// mode is the segment of the ID clock's path being followed.
type mode uint8

const (
	modeFollow  mode = iota // advancing with monotonic time
	modeBack                // ahead of the wall clock, running slow
	modeForward             // behind the wall clock, running fast
)

// Slewing is the ID clock: Unix nanoseconds that advance with monotonic time,
// stay close to the wall clock, and never go back. A step back of the wall
// clock is slewed at BackRate, a step forward followed (or slewed at
// ForwardRate, or held until confirmed: HoldForward), and
// [Slewing.Raise] lifts it over a persisted watermark.
//
// It takes a reading of its Source at every call, under a mutex, so it costs
// a wall-clock read and a lock; the generator reads it through [Coarse].
// Safe for concurrent use.
type Slewing struct {
	src       Source
	back      rate // 1 - BackRate
	forward   rate // 1 + ForwardRate, when fastFwd
	fastFwd   bool // ForwardRate > 0
	backRate  float64
	fwdRate   float64
	threshold int64
	hold      int64         // SlewConfig.HoldForward; 0 holds nothing
	stepped   chan struct{} // see Stepped; capacity 1

	mu struct {
		sync.Mutex
		// last is the greatest value handed out, read at mono lastMono.
		last     int64
		lastMono time.Duration
		// The current segment started at (anchor, anchorMono) and is in
		// mode seg. Values inside a segment are computed from its start,
		// not from the previous reading, so that rounding never piles up:
		// a slew read every nanosecond runs as fast as one read every hour.
		seg        mode
		anchor     int64
		anchorMono time.Duration

		wall     int64 // wall clock at the last reading
		skew     int64 // wall - mono at the last reading, to spot steps
		stepsBck uint64
		stepsFwd uint64
		lastStep time.Duration
		raises   uint64

		held      int64  // steps forward held back, >= 0; see Basis
		unchecked int64  // steps forward followed since the last Settle, >= 0
		undone    int64  // held undone by steps back since the last Settle, >= 0
		changes   uint64 // the steps that changed held or passed HoldForward; see Basis
		heldSteps uint64
		released  uint64
	}
}

// NewSlewing returns an ID clock on src that starts at src's wall clock.
//
// Errors: ErrNilSource if src is nil; ErrInvalidConfig (wrapped, with the
// reason) if cfg.Validate fails.
func NewSlewing(src Source, cfg SlewConfig) (*Slewing, error) {
	if src == nil {
		return nil, ErrNilSource
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Slewing{
		src:       src,
		back:      newRate(1 - cfg.BackRate),
		forward:   newRate(1 + cfg.ForwardRate),
		fastFwd:   cfg.ForwardRate > 0,
		backRate:  cfg.BackRate,
		fwdRate:   cfg.ForwardRate,
		threshold: int64(cfg.StepThreshold),
		hold:      int64(cfg.HoldForward),
		stepped:   make(chan struct{}, 1),
	}
	r := src.Now()
	s.mu.held = int64(cfg.StartHeld)
	wall := subSat(r.Wall.UnixNano(), s.mu.held)
	s.mu.last, s.mu.lastMono = wall, r.Mono
	s.mu.anchor, s.mu.anchorMono = wall, r.Mono
	s.mu.wall = r.Wall.UnixNano()
	s.mu.skew = s.mu.wall - int64(r.Mono)
	return s, nil
}

// UnixNano returns the ID clock in Unix nanoseconds. It never returns less
// than it has returned before, nor less than any value given to Raise.
func (s *Slewing) UnixNano() int64 {
	r := s.src.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readLocked(r)
}

// After returns the Source's After: a channel closed once d of monotonic
// time has passed. While slewing back the ID clock moves less than d in
// that time; callers waiting for an ID-clock value must check it again.
func (s *Slewing) After(d time.Duration) <-chan struct{} { return s.src.After(d) }

// Raise makes the ID clock never read below unixNano from now on: if it is
// below, it jumps up to it, then slews back toward the wall clock at
// BackRate. A worker calls it with the time watermark persisted by the
// previous holder of its worker ID, so its IDs start after that holder's.
// When the clock is read through a [Coarse], call [Coarse.Raise] instead.
func (s *Slewing) Raise(unixNano int64) {
	r := s.src.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readLocked(r) >= unixNano {
		return
	}
	// Start a fresh segment at the watermark: the next reading slews from
	// here, not from wherever the previous segment began.
	s.mu.last = unixNano
	s.mu.seg, s.mu.anchor, s.mu.anchorMono = modeFollow, unixNano, s.mu.lastMono
	s.mu.raises++
}

// Status takes a reading and describes the clock.
func (s *Slewing) Status() SlewStatus {
	r := s.src.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readLocked(r)
	off := s.mu.last - subSat(s.mu.wall, s.mu.held)
	st := SlewStatus{
		UnixNano:     s.mu.last,
		Wall:         time.Unix(0, s.mu.wall),
		Offset:       time.Duration(off),
		Slewing:      off > s.threshold || -off > s.threshold,
		StepsBack:    s.mu.stepsBck,
		StepsForward: s.mu.stepsFwd,
		LastStep:     s.mu.lastStep,
		Raises:       s.mu.raises,
		Held:         time.Duration(s.mu.held),
		Unchecked:    time.Duration(s.mu.unchecked),
		HeldSteps:    s.mu.heldSteps,
		Released:     s.mu.released,
	}
	switch {
	case off > 0:
		st.CatchUp = time.Duration(float64(off) / s.backRate)
	case off < 0 && s.fastFwd:
		st.CatchUp = time.Duration(float64(-off) / s.fwdRate)
	}
	return st
}

// Basis is what a check of the ID clock's wall clock measures: the wall
// clock the ID clock follows (the source's, less Held), the steps held,
// the ID clock itself at the same reading, and a count of the steps that
// changed what is held or were larger than HoldForward, which tells a
// check whether the clock stepped while it measured (smaller steps move
// a measurement less than the check's limit, and are bounded anyway).
type Basis struct {
	Wall    time.Time
	Held    time.Duration
	Clock   time.Time
	Changes uint64

	// The small steps followed up to this reading: what a verdict on it
	// may count as checked (Settle).
	unchecked int64
}

// Basis takes a reading and returns the wall clock the ID clock follows.
// An NTP check measures it, so that it judges the time the ID clock is
// made of, and tells from Held whether a held step was true.
func (s *Slewing) Basis() Basis {
	r := s.src.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.readLocked(r)
	return Basis{
		Wall: time.Unix(0, subSat(s.mu.wall, s.mu.held)), Held: time.Duration(s.mu.held),
		Clock: time.Unix(0, v), Changes: s.mu.changes,
		unchecked: s.mu.unchecked,
	}
}

// Settle records a check's verdict on b, a Basis taken when it began:
// the wall clock followed was right, or behind by release of the held
// steps, which are let through then (all of them, b.Held, when the
// stepped wall clock was right): the ID clock follows them (or slews at
// ForwardRate). Either way the small steps followed up to b count as
// checked; those followed since do not. It does nothing, and returns
// false, if the wall clock has stepped since b (Changes): the verdict is
// not of the clock as it is now.
func (s *Slewing) Settle(b Basis, release time.Duration) bool {
	r := s.src.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readLocked(r)
	if s.mu.changes != b.Changes {
		return false
	}
	s.mu.unchecked = max(0, s.mu.unchecked-b.unchecked)
	if release > 0 && s.mu.held > 0 {
		s.mu.held = max(0, s.mu.held-int64(release))
		s.mu.released++
	}
	// What steps back undid is held again by the next steps forward for
	// as long as anything is held: a verdict that the held step is wrong
	// says nothing of the undone part, and forgetting it would let a
	// wall clock jittering across rounds through bit by bit.
	if s.mu.held == 0 {
		s.mu.undone = 0
	}
	return true
}

// Stepped returns a channel that receives when the wall clock has
// stepped by more than HoldForward either way (a step held, or one back
// that may have undone one), or its small steps forward add up past it,
// for an NTP check to look at once. Signals are not queued: one receive
// stands for every step since the last. It never receives while
// HoldForward is zero.
func (s *Slewing) Stepped() <-chan struct{} { return s.stepped }

// readLocked moves the ID clock to reading r and returns its value.
//
// HAZARD: this is where "never backwards" lives. Every branch must yield a
// value >= s.mu.last; the final max is the backstop, and the property test
// drives random steps through here to check that the backstop is never the
// only thing keeping the clock monotonic at a rate below (1-BackRate).
func (s *Slewing) readLocked(r Reading) int64 {
	mono := r.Mono
	if mono < s.mu.lastMono {
		// A reading older than the last one: callers read the source
		// before they take the lock, so a reader descheduled in between
		// brings one. It says nothing new; its wall clock, set against
		// the newer reading's, would look like a step back and then
		// forward again, which would undo a held step for good.
		return s.mu.last
	}
	wall := r.Wall.UnixNano()

	// Count steps: a jump of (wall - mono) is the wall clock moving
	// without time passing.
	skew := wall - int64(mono)
	if d := skew - s.mu.skew; d > s.threshold {
		s.mu.stepsFwd++
		s.mu.lastStep = time.Duration(d)
		s.forwardLocked(d)
	} else if -d > s.threshold {
		s.mu.stepsBck++
		s.mu.lastStep = time.Duration(d)
		s.backLocked(-d)
	}
	s.mu.skew = skew
	s.mu.wall = wall
	wall = subSat(wall, s.mu.held)

	last := s.mu.last
	follow := addSat(last, int64(mono-s.mu.lastMono))
	var next int64
	switch {
	case wall < follow:
		// Ahead of the wall clock: run slow, but never slower than
		// (1-BackRate), and drop to the wall clock once it is above us.
		s.enterLocked(modeBack)
		slow := addSat(s.mu.anchor, s.back.scale(int64(mono-s.mu.anchorMono)))
		if wall > slow {
			next = wall
			s.restartLocked(modeFollow, wall, mono)
		} else {
			next = slow
		}
	case wall > follow && s.fastFwd:
		// Behind the wall clock, slewing forward: run fast until we meet
		// it, and never pass it.
		s.enterLocked(modeForward)
		fast := addSat(s.mu.anchor, s.forward.scale(int64(mono-s.mu.anchorMono)))
		if fast >= wall {
			next = wall
			s.restartLocked(modeFollow, wall, mono)
		} else {
			next = fast
		}
	case wall > follow:
		// Behind the wall clock with ForwardRate 0: follow the step.
		next = wall
		s.restartLocked(modeFollow, wall, mono)
	default:
		next = follow
		s.restartLocked(modeFollow, follow, mono)
	}
	next = max(next, last)
	s.mu.last, s.mu.lastMono = next, mono
	return next
}

// enterLocked starts a segment in mode m at the last value handed out,
// unless one is already running: switching from a fast forward slew to a
// slow back slew, say, must slow down from where the clock is, not from
// where the forward slew began.
func (s *Slewing) enterLocked(m mode) {
	if s.mu.seg != m {
		s.restartLocked(m, s.mu.last, s.mu.lastMono)
	}
}

func (s *Slewing) restartLocked(m mode, at int64, mono time.Duration) {
	s.mu.seg, s.mu.anchor, s.mu.anchorMono = m, at, mono
}

// forwardLocked accounts for a step forward of d: it holds again what
// steps back undid since the last check (a wall clock that jitters back
// and forth must not let a held step through bit by bit), then follows
// the rest while the steps followed since the last check stay within
// HoldForward, and holds it otherwise.
func (s *Slewing) forwardLocked(d int64) {
	if s.hold == 0 {
		return
	}
	if s.mu.undone > 0 {
		again := min(s.mu.undone, d)
		s.mu.undone -= again
		s.mu.held = addSat(s.mu.held, again)
		s.mu.changes++
		if again > s.hold {
			s.signalLocked()
		}
		d -= again
	}
	switch {
	case d == 0:
	case addSat(s.mu.unchecked, d) > s.hold:
		s.mu.held = addSat(s.mu.held, d)
		s.mu.heldSteps++
		s.mu.changes++
		s.signalLocked()
	default:
		s.mu.unchecked += d
	}
}

// backLocked accounts for a step back of d > 0. It undoes a held step
// first (remembered in undone, for forwardLocked), so that the wall
// clock the ID clock follows moves back only by what is left of the
// step. What stays held is let through if it is no more than what
// HoldForward leaves of the unchecked budget (the rest of a held step
// corrected but for the drift of the clocks meanwhile): it counts as an
// unchecked step then, as a step of its size would have.
func (s *Slewing) backLocked(d int64) {
	undo := min(s.mu.held, d)
	s.mu.held -= undo
	s.mu.undone = addSat(s.mu.undone, undo)
	// unchecked is not lowered: it counts the wall clock's moves forward
	// since the last check, and one undone and made again must count
	// twice, or a step taken back while a check measures and made again
	// after it would pass unchecked.
	if s.mu.held > 0 && undo > 0 && addSat(s.mu.unchecked, s.mu.held) <= s.hold {
		s.mu.unchecked = addSat(s.mu.unchecked, s.mu.held)
		s.mu.held = 0
	}
	if undo > 0 || d > s.hold {
		s.mu.changes++
	}
	if s.hold > 0 && d > s.hold {
		s.signalLocked()
	}
}

func (s *Slewing) signalLocked() {
	select {
	case s.stepped <- struct{}{}:
	default: // one is pending already
	}
}

// rate is a non-negative float64 held exactly as mant / 2^shift, so that
// scaling a duration by it is integer arithmetic: exact (the floor of the
// true product), monotonic in the duration, and free of the drift that
// rounding each reading would add up to.
type rate struct {
	mant  uint64
	shift uint // < 128
}

// newRate converts f, which must be in [0, 2^53), exactly.
func newRate(f float64) rate {
	if !(f > 0) {
		return rate{}
	}
	frac, exp := math.Frexp(f) // f = frac * 2^exp, frac in [0.5, 1)
	mant := uint64(frac * (1 << 53))
	shift := 53 - exp
	// Drop trailing zero bits so common rates (0.5, 1.5) shift little.
	for shift > 0 && mant&1 == 0 {
		mant >>= 1
		shift--
	}
	if shift < 0 || shift >= 128 {
		// Outside the range NewSlewing lets through: 1-BackRate is at
		// least 2^-53 and 1+ForwardRate is at most 1001.
		return rate{}
	}
	return rate{mant: mant, shift: uint(shift)}
}

// scale returns floor(d * r), saturating at math.MaxInt64; d <= 0 gives 0.
func (r rate) scale(d int64) int64 {
	if d <= 0 || r.mant == 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(d), r.mant)
	var v uint64
	switch {
	case r.shift >= 64:
		v = hi >> (r.shift - 64)
	case r.shift == 0:
		if hi != 0 {
			return math.MaxInt64
		}
		v = lo
	default:
		if hi>>r.shift != 0 {
			return math.MaxInt64
		}
		v = hi<<(64-r.shift) | lo>>r.shift
	}
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// addSat returns a+b for b >= 0, saturating at math.MaxInt64 instead of
// wrapping to a negative (far past) time.
func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// subSat returns a-b for b >= 0, saturating at math.MinInt64.
func subSat(a, b int64) int64 {
	if b > 0 && a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}
