package clock

import (
	"sync/atomic"
	"time"
)

// Skewed is a Source whose wall clock is another Source's plus an offset
// that can be changed at run time; monotonic time and waiting are the
// other Source's. It lets a test or a fault scenario step a live worker's
// wall clock while real time, and with it etcd's leases, goes on.
// Safe for concurrent use.
type Skewed struct {
	src    Source
	offset atomic.Int64 // nanoseconds added to src's wall clock
}

var _ Source = (*Skewed)(nil)

// NewSkewed returns src with its wall clock shifted by offset.
func NewSkewed(src Source, offset time.Duration) *Skewed {
	s := &Skewed{src: src}
	s.offset.Store(int64(offset))
	return s
}

// Now implements [Source].
func (s *Skewed) Now() Reading {
	r := s.src.Now()
	r.Wall = r.Wall.Add(time.Duration(s.offset.Load()))
	return r
}

// Mono implements [Source].
func (s *Skewed) Mono() time.Duration { return s.src.Mono() }

// After implements [Source].
func (s *Skewed) After(d time.Duration) <-chan struct{} { return s.src.After(d) }

// Step moves the wall clock by d (negative: back), as an NTP step does.
func (s *Skewed) Step(d time.Duration) { s.offset.Add(int64(d)) }

// Offset reports the current shift from the underlying wall clock.
func (s *Skewed) Offset() time.Duration { return time.Duration(s.offset.Load()) }
