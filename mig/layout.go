package mig

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Field widths and limits of the ID layout.
const (
	TickBits   = 39
	WorkerBits = 6
	SeqBits    = 18

	// Tick is the resolution of an ID's timestamp.
	Tick = 10 * time.Millisecond

	MaxTick   = 1<<TickBits - 1   // the last tick the layout can represent
	MaxWorker = 1<<WorkerBits - 1 // 63
	MaxSeq    = 1<<SeqBits - 1    // 262143

	workerShift = SeqBits
	tickShift   = SeqBits + WorkerBits
)

// DefaultEpoch is the epoch used when none is configured: 2025-01-01 UTC.
// With 39 bits of 10 ms ticks the layout lasts until 2199.
const DefaultEpoch = "2025-01-01T00:00:00Z"

// Errors returned by the layout.
var (
	// ErrTickRange is returned for a tick outside 0..MaxTick, or a time
	// before the epoch or after the layout's last tick.
	ErrTickRange = errors.New("mig: tick out of range")
	// ErrWorkerRange is returned for a worker outside 0..MaxWorker.
	ErrWorkerRange = errors.New("mig: worker out of range")
	// ErrSeqRange is returned for a sequence outside 0..MaxSeq.
	ErrSeqRange = errors.New("mig: sequence out of range")
	// ErrInvalidID is returned for a value that cannot be an ID: the sign
	// bit set, or text that is not a decimal number below 2^63.
	ErrInvalidID = errors.New("mig: invalid ID")
	// ErrEpoch is returned for an epoch that is not RFC 3339 or not a whole
	// number of ticks.
	ErrEpoch = errors.New("mig: invalid epoch")
)

// ID is a message ID. Valid IDs are below 2^63, so they fit a signed 64-bit
// integer in every language and database.
type ID uint64

// String returns the ID in decimal.
func (id ID) String() string { return strconv.FormatUint(uint64(id), 10) }

// Parts are the fields of an ID.
type Parts struct {
	Tick   int64  // 10 ms ticks since the epoch
	Worker uint32 // 0..MaxWorker
	Seq    uint32 // 0..MaxSeq
}

// Layout places IDs in time: it holds the epoch. The zero value is not
// usable; construct with [NewLayout] or [ParseLayout]. A Layout is an
// immutable value, safe for concurrent use.
type Layout struct {
	epoch int64 // Unix nanoseconds, a whole number of ticks
}

// NewLayout returns the layout with the given epoch. It returns ErrEpoch if
// the epoch is not a whole number of ticks after the Unix epoch, or if the
// layout's last tick would not fit a time.Time's Unix nanoseconds.
func NewLayout(epoch time.Time) (Layout, error) {
	ns := epoch.UnixNano()
	if !epoch.Equal(time.Unix(0, ns)) || ns < 0 || ns%int64(Tick) != 0 {
		return Layout{}, fmt.Errorf("%w: %s is not a whole number of %v after 1970", ErrEpoch, epoch.UTC().Format(time.RFC3339Nano), Tick)
	}
	if ns > (1<<63-1)-MaxTick*int64(Tick) {
		return Layout{}, fmt.Errorf("%w: %s is too late to leave room for 2^39 ticks", ErrEpoch, epoch.UTC().Format(time.RFC3339))
	}
	return Layout{epoch: ns}, nil
}

// ParseLayout returns the layout whose epoch is the RFC 3339 text s, or
// [DefaultEpoch] when s is empty. Errors wrap ErrEpoch.
func ParseLayout(s string) (Layout, error) {
	if s == "" {
		s = DefaultEpoch
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Layout{}, fmt.Errorf("%w: %q is not RFC 3339 (like %s)", ErrEpoch, s, DefaultEpoch)
	}
	return NewLayout(t)
}

// DefaultLayout returns the layout with [DefaultEpoch].
func DefaultLayout() Layout {
	l, err := ParseLayout(DefaultEpoch)
	if err != nil {
		panic(err) // DefaultEpoch is a valid constant
	}
	return l
}

// Epoch returns the layout's epoch in UTC.
func (l Layout) Epoch() time.Time { return time.Unix(0, l.epoch).UTC() }

// EpochNanos returns the epoch in Unix nanoseconds.
func (l Layout) EpochNanos() int64 { return l.epoch }

// Compose returns the ID of (tick, worker, seq), or an error wrapping
// ErrTickRange, ErrWorkerRange or ErrSeqRange naming the part out of range.
func (l Layout) Compose(tick int64, worker, seq uint32) (ID, error) {
	switch {
	case tick < 0 || tick > MaxTick:
		return 0, fmt.Errorf("%w: tick %d not in 0..%d", ErrTickRange, tick, int64(MaxTick))
	case worker > MaxWorker:
		return 0, fmt.Errorf("%w: worker %d not in 0..%d", ErrWorkerRange, worker, MaxWorker)
	case seq > MaxSeq:
		return 0, fmt.Errorf("%w: sequence %d not in 0..%d", ErrSeqRange, seq, MaxSeq)
	}
	return compose(tick, worker, seq), nil
}

func compose(tick int64, worker, seq uint32) ID {
	return ID(uint64(tick)<<tickShift | uint64(worker)<<workerShift | uint64(seq))
}

// Decompose returns the parts of id, or an error wrapping ErrInvalidID if
// its sign bit is set. Every other 64-bit value is a well-formed ID.
func (l Layout) Decompose(id ID) (Parts, error) {
	if id>>63 != 0 {
		return Parts{}, fmt.Errorf("%w: %d has the sign bit set", ErrInvalidID, uint64(id))
	}
	return Parts{
		Tick:   int64(id >> tickShift),
		Worker: uint32(id>>workerShift) & MaxWorker,
		Seq:    uint32(id) & MaxSeq,
	}, nil
}

// Time returns the start of the tick id was issued in.
func (l Layout) Time(id ID) time.Time { return l.TickTime(int64(id >> tickShift)) }

// TickTime returns the start of tick in UTC.
func (l Layout) TickTime(tick int64) time.Time {
	return time.Unix(0, l.epoch+tick*int64(Tick)).UTC()
}

// TickOf returns the tick containing t (Unix nanoseconds), which may be
// negative or above MaxTick; callers range-check.
func (l Layout) TickOf(unixNano int64) int64 {
	d := unixNano - l.epoch
	if d < 0 {
		return (d - int64(Tick) + 1) / int64(Tick) // floor
	}
	return d / int64(Tick)
}

// LastTime returns the start of the last tick the layout can represent,
// about 174 years after the epoch.
func (l Layout) LastTime() time.Time { return l.TickTime(MaxTick) }

// ParseID parses a decimal ID. It returns an error wrapping ErrInvalidID
// for text that is not a decimal number, is negative, or is 2^63 or more.
func ParseID(s string) (ID, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("%w: %q is negative", ErrInvalidID, s)
	}
	if s[0] == '+' {
		return 0, fmt.Errorf("%w: %q is not a plain decimal number", ErrInvalidID, s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("%w: %q needs more than 64 bits", ErrInvalidID, s)
		}
		return 0, fmt.Errorf("%w: %q is not a decimal number", ErrInvalidID, s)
	}
	if v>>63 != 0 {
		return 0, fmt.Errorf("%w: %q has the sign bit set (IDs are below 2^63)", ErrInvalidID, s)
	}
	return ID(v), nil
}
