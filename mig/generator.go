package mig

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by a Generator. ErrBatchSize is a caller's mistake; the
// others are refusals of the ErrUnavailable family.
var (
	// ErrUnavailable is wrapped by every error with which a Generator
	// refuses to issue now for a reason of its own, not of the request's:
	// ErrFenced, ErrCeiling, ErrExhausted, ErrClockRange. Such a call
	// consumed nothing, and another worker, or this one later, may well
	// succeed. Package workerid adds its own refusals to the family
	// (workerid.ErrUnavailable is this error).
	ErrUnavailable = errors.New("mig: unavailable")

	// ErrFenced is returned once the generator is stopped, normally because
	// the worker can no longer prove it holds its worker ID. A stopped
	// generator never issues again; the worker builds a new one when it
	// holds a lease again.
	ErrFenced error = &unavailableError{"mig: generator stopped: worker ID not held"}
	// ErrCeiling is returned when issuing would need a tick above the
	// ceiling (the persisted time watermark) and the ceiling has not been
	// raised in time.
	ErrCeiling error = &unavailableError{"mig: time watermark reached"}
	// ErrExhausted is returned, when Config.NoWait is set, if a tick's
	// sequence numbers and every tick the generator may borrow are used up.
	ErrExhausted error = &unavailableError{"mig: sequence numbers exhausted"}
	// ErrClockRange is returned when the clock reads before the epoch or
	// after the layout's last tick.
	ErrClockRange error = &unavailableError{"mig: clock outside the layout's range"}

	// ErrBatchSize is returned for a batch of fewer than 1 or more than
	// MaxBatch IDs.
	ErrBatchSize = errors.New("mig: batch size out of range")
)

// unavailableError is a sentinel of the ErrUnavailable family: an error of
// its own, with its own text, for which errors.Is(err, ErrUnavailable)
// holds too.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string { return e.msg }
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

const (
	// MaxBatch is the largest batch NextN hands out: one tick's worth.
	MaxBatch = MaxSeq + 1

	// DefaultBorrow is how far ahead of the clock a burst may issue by
	// default.
	DefaultBorrow = time.Second

	tickNanos = int64(Tick)

	// stoppedBit marks a stopped generator in its state word; packed slots
	// use the low TickBits+SeqBits = 57 bits.
	stoppedBit = 1 << 63
)

// Clock is the time a Generator reads: the slewing ID clock, normally
// through clock.Coarse. UnixNano must never return less than it returned
// before; After must close its channel once d has passed.
type Clock interface {
	UnixNano() int64
	After(d time.Duration) <-chan struct{}
}

// Ceiling bounds the ticks a Generator may issue. The worker-ID lease
// implements it with the time watermark it has persisted in etcd.
type Ceiling interface {
	// Ceiling returns the highest tick that may be issued now. It must not
	// block, and the values it returns must never decrease.
	Ceiling() int64
}

// MemCeiling is an in-memory Ceiling, for tests and for a worker that has
// nowhere to persist a watermark. The zero value allows nothing before
// Raise. Safe for concurrent use.
type MemCeiling struct{ v atomic.Int64 }

var _ Ceiling = (*MemCeiling)(nil)

// NewMemCeiling returns a ceiling at tick.
func NewMemCeiling(tick int64) *MemCeiling {
	c := &MemCeiling{}
	c.v.Store(tick)
	return c
}

// Ceiling implements [Ceiling].
func (c *MemCeiling) Ceiling() int64 { return c.v.Load() }

// Raise moves the ceiling up to tick; a lower tick is ignored.
func (c *MemCeiling) Raise(tick int64) {
	for {
		old := c.v.Load()
		if tick <= old || c.v.CompareAndSwap(old, tick) {
			return
		}
	}
}

// Config configures a Generator. The zero value of every field but Layout
// and Worker means its default.
type Config struct {
	// Layout places IDs in time. The zero Layout's epoch is 1970.
	Layout Layout
	// Worker is this worker's ID, 0..MaxWorker.
	Worker uint32
	// Start is the first tick that may be issued: one past the time
	// watermark of the worker ID's previous holder, and past anything this
	// process issued before. 0 means no floor.
	Start int64
	// Borrow bounds how far ahead of the clock a burst may issue once the
	// current tick's sequence numbers are used up (default DefaultBorrow,
	// at least one tick). Past it the generator waits, or fails with
	// ErrExhausted when NoWait is set.
	Borrow time.Duration
	// NoWait makes Next and NextN fail with ErrExhausted instead of waiting
	// for the clock when every borrowable tick is used.
	NoWait bool
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	if c.Worker > MaxWorker {
		return fmt.Errorf("%w: worker %d not in 0..%d", ErrWorkerRange, c.Worker, MaxWorker)
	}
	if c.Start < 0 || c.Start > MaxTick {
		return fmt.Errorf("%w: start tick %d not in 0..%d", ErrTickRange, c.Start, int64(MaxTick))
	}
	if c.Borrow < 0 {
		return fmt.Errorf("mig: borrow %v is negative", c.Borrow)
	}
	return nil
}

// Generator issues the IDs of one worker during one tenure of its worker
// ID. Safe for concurrent use; Next and NextN are lock-free: one atomic
// word holds the next free (tick, sequence) slot and a compare-and-swap
// claims slots from it.
//
// Every ID it issues is above every ID it issued before, its tick is at
// least Config.Start, at most Borrow ahead of the clock, and never above the
// Ceiling. HAZARD: uniqueness across holders of a worker ID rests on the
// last two: a new holder starts above the old holder's persisted
// watermark, so the ceiling check must stay on every path that issues.
//
// Stop is folded into the same word, so it is atomic with issuing: once
// Stop returns, no call issues again, and the tick it returns bounds
// everything ever issued. A clean shutdown persists that tick.
type Generator struct {
	// next packs the next free slot as tick<<SeqBits | seq, so adding one
	// to a tick's last sequence number carries into the next tick. Bit 63
	// (stoppedBit) marks a stopped generator.
	next      atomic.Uint64
	ceilCache atomic.Int64 // last value read from ceil

	clock      Clock
	ceil       Ceiling
	stopped    chan struct{} // closed by Stop, releases waiters
	stopOnce   sync.Once
	workerBits uint64
	epoch      int64
	borrow     int64 // ticks
	noWait     bool
	layout     Layout

	waits       atomic.Uint64
	ceilingHits atomic.Uint64
	exhaustHits atomic.Uint64
}

// New returns a generator for cfg that reads clock and stays under ceil.
// It returns an error wrapping ErrWorkerRange or ErrTickRange for a worker
// or start tick out of range, or a plain error for a negative Borrow.
func New(cfg Config, clock Clock, ceil Ceiling) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clock == nil || ceil == nil {
		return nil, errors.New("mig: generator needs a clock and a ceiling")
	}
	borrow := cfg.Borrow
	if borrow == 0 {
		borrow = DefaultBorrow
	}
	borrowTicks := max(int64(borrow/Tick), 1)
	g := &Generator{
		clock:      clock,
		ceil:       ceil,
		stopped:    make(chan struct{}),
		workerBits: uint64(cfg.Worker) << workerShift,
		epoch:      cfg.Layout.epoch,
		borrow:     borrowTicks,
		noWait:     cfg.NoWait,
		layout:     cfg.Layout,
	}
	g.next.Store(uint64(cfg.Start) << SeqBits)
	g.ceilCache.Store(ceil.Ceiling())
	return g, nil
}

// Next returns a new ID: NextN(1), without the Batch.
//
// It fails with ErrFenced once the generator is stopped, ErrCeiling when the ID would
// need a tick above the ceiling, ErrExhausted (only with NoWait) when every
// borrowable sequence number is used, and ErrClockRange when the clock is
// outside the layout. A failed call consumes nothing.
func (g *Generator) Next() (ID, error) {
	slot, err := g.reserve(1)
	if err != nil {
		return 0, err
	}
	return ID(slot>>SeqBits<<tickShift | g.workerBits | slot&MaxSeq), nil
}

// NextN reserves n IDs at once (1 <= n <= MaxBatch) and returns them as a
// Batch: n consecutive (tick, sequence) slots, all above every ID issued
// before. Errors are those of Next, plus ErrBatchSize for n out of range.
// A failed call consumes nothing.
func (g *Generator) NextN(n int) (Batch, error) {
	if n < 1 || n > MaxBatch {
		return Batch{}, fmt.Errorf("%w: %d not in 1..%d", ErrBatchSize, n, MaxBatch)
	}
	first, err := g.reserve(uint64(n))
	if err != nil {
		return Batch{}, err
	}
	return Batch{first: first, n: uint32(n), workerBits: g.workerBits}, nil
}

// reserve claims n consecutive slots (1 <= n <= MaxBatch) and returns the
// first: the one path that issues, for Next and NextN alike.
//
// HAZARD: every check that keeps IDs unique and increasing is here, once:
// the stopped bit (read in the same word the compare-and-swap claims, so
// Stop is atomic with issuing), the borrow bound, and the ceiling, checked
// on the last slot's tick so that no slot of the batch is above it.
func (g *Generator) reserve(n uint64) (uint64, error) {
	for {
		now, err := g.nowTick()
		if err != nil {
			return 0, err
		}
		s := g.next.Load()
		if s&stoppedBit != 0 {
			return 0, ErrFenced
		}
		first := max(s, uint64(now)<<SeqBits)
		last := first + n - 1
		lastTick := int64(last >> SeqBits)
		if lastTick > now+g.borrow {
			if err := g.wait(lastTick - g.borrow); err != nil {
				return 0, err
			}
			continue
		}
		if lastTick > g.ceilCache.Load() && !g.underCeiling(lastTick) {
			return 0, ErrCeiling
		}
		if g.next.CompareAndSwap(s, last+1) {
			return first, nil
		}
	}
}

// nowTick reads the clock as a tick of the layout.
func (g *Generator) nowTick() (int64, error) {
	ns := g.clock.UnixNano() - g.epoch
	if ns < 0 {
		return 0, fmt.Errorf("%w: clock reads %v before the epoch", ErrClockRange, time.Duration(-ns))
	}
	t := ns / tickNanos
	if t > MaxTick-g.borrow {
		// Refuse before the last ticks so a borrowed tick never overflows
		// the 39-bit field into the sign bit.
		return 0, fmt.Errorf("%w: clock reads past %s", ErrClockRange, g.layout.TickTime(MaxTick-g.borrow).Format(time.RFC3339))
	}
	return t, nil
}

// underCeiling refreshes the cached ceiling and reports whether tick may be
// issued.
func (g *Generator) underCeiling(tick int64) bool {
	c := g.ceil.Ceiling()
	g.ceilCache.Store(c)
	if tick <= c {
		return true
	}
	g.ceilingHits.Add(1)
	return false
}

// wait blocks, holding no lock, until the clock reaches tick or the
// generator is fenced. With NoWait it returns ErrExhausted at once.
func (g *Generator) wait(tick int64) error {
	g.exhaustHits.Add(1)
	if g.noWait {
		return ErrExhausted
	}
	g.waits.Add(1)
	d := time.Duration(g.epoch + tick*tickNanos - g.clock.UnixNano())
	select {
	case <-g.clock.After(max(d, 0)):
		return nil
	case <-g.stopped:
		return ErrFenced
	}
}

// LastTick returns the highest tick issued so far, or Config.Start-1 if
// nothing was issued.
func (g *Generator) LastTick() int64 { return lastTick(g.next.Load() &^ stoppedBit) }

// lastTick returns the tick of the slot before next: the last slot issued,
// or (Start-1, MaxSeq) before the first.
func lastTick(next uint64) int64 {
	if next == 0 {
		return -1
	}
	return int64((next - 1) >> SeqBits)
}

// Stop stops the generator for good and returns the highest tick it ever
// issued (Config.Start-1 if none). Calls in flight either issued before
// Stop took effect or fail with ErrFenced; callers waiting for the clock
// are released with ErrFenced. Stop may be called more than once.
func (g *Generator) Stop() (lastIssued int64) {
	for {
		s := g.next.Load()
		if s&stoppedBit != 0 || g.next.CompareAndSwap(s, s|stoppedBit) {
			g.stopOnce.Do(func() { close(g.stopped) })
			return lastTick(s &^ stoppedBit)
		}
	}
}

// Stats are a generator's slow-path counters.
type Stats struct {
	Waits       uint64 // times a caller waited for the clock
	Exhausted   uint64 // times every borrowable slot was in use
	CeilingHits uint64 // calls refused at the ceiling
}

// Stats returns the generator's counters.
func (g *Generator) Stats() Stats {
	return Stats{Waits: g.waits.Load(), Exhausted: g.exhaustHits.Load(), CeilingHits: g.ceilingHits.Load()}
}

// Stopped reports whether Stop has been called.
func (g *Generator) Stopped() bool { return g.next.Load()&stoppedBit != 0 }
