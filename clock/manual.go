package clock

import (
	"sync"
	"time"
)

// Manual is a Source for tests: time moves only when the test says so.
// [Manual.Advance] moves wall and monotonic time together, as time passing;
// [Manual.StepBack] and [Manual.StepForward] move the wall clock alone, as
// an NTP step does, while monotonic time stays put. Safe for concurrent use.
type Manual struct {
	mu struct {
		sync.Mutex
		wall    time.Time
		mono    time.Duration
		waiters []waiter
	}
}

type waiter struct {
	at time.Duration // monotonic
	ch chan struct{}
}

var _ Source = (*Manual)(nil)

// NewManual returns a manual clock whose wall clock reads wall and whose
// monotonic clock reads zero.
func NewManual(wall time.Time) *Manual {
	m := &Manual{}
	m.mu.wall = wall
	return m
}

// Now implements [Source].
func (m *Manual) Now() Reading {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Reading{Wall: m.mu.wall, Mono: m.mu.mono}
}

// Mono implements [Source].
func (m *Manual) Mono() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.mono
}

// After implements [Source]: the channel closes when Advance has moved
// monotonic time by d or more.
func (m *Manual) After(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	m.mu.Lock()
	defer m.mu.Unlock()
	if d <= 0 {
		close(ch)
		return ch
	}
	m.mu.waiters = append(m.mu.waiters, waiter{at: m.mu.mono + d, ch: ch})
	return ch
}

// Advance lets d pass: wall and monotonic time both move forward by d, and
// waiters whose time has come are released. d must not be negative.
func (m *Manual) Advance(d time.Duration) {
	if d < 0 {
		d = 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.wall = m.mu.wall.Add(d)
	m.mu.mono += d
	kept := m.mu.waiters[:0]
	for _, w := range m.mu.waiters {
		if w.at <= m.mu.mono {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	m.mu.waiters = kept
}

// StepBack sets the wall clock back by d, leaving monotonic time alone.
func (m *Manual) StepBack(d time.Duration) { m.step(-d) }

// StepForward sets the wall clock forward by d, leaving monotonic time alone.
func (m *Manual) StepForward(d time.Duration) { m.step(d) }

func (m *Manual) step(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.wall = m.mu.wall.Add(d)
}

// Waiters reports how many After channels are still open; tests use it to
// know a goroutine has reached its wait before advancing.
func (m *Manual) Waiters() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mu.waiters)
}
