package scenario

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/migsvc/mig/clock"
)

// maxEvents bounds a timeline; later events are counted, not kept.
const maxEvents = 2000

// Event is one line of a scenario's timeline: something the runner did,
// something a server logged, or something the load saw. A plain value.
type Event struct {
	// At is the time since the scenario started, in seconds (the same
	// origin as the checker's "+1.234567s" offsets).
	At   float64 `json:"at_s"`
	Who  string  `json:"who"` // "runner", a server ("dc1-a"), "etcd dc1", "load"
	What string  `json:"what"`
}

func (e Event) String() string { return fmt.Sprintf("%+9.3fs  %-9s %s", e.At, e.Who, e.What) }

// timeline records events in the order they are noted, and writes each to
// a live progress writer too. Safe for concurrent use.
type timeline struct {
	clk   clock.Source
	start time.Duration // monotonic origin
	mu    struct {
		sync.Mutex
		events  []Event
		dropped int
		out     io.Writer
		last    map[string]string // who → the last What, to drop repeats
	}
}

func newTimeline(clk clock.Source, start time.Duration, out io.Writer) *timeline {
	t := &timeline{clk: clk, start: start}
	t.mu.out = out
	t.mu.last = make(map[string]string)
	return t
}

// since returns the time since the origin.
func (t *timeline) since(mono time.Duration) float64 { return (mono - t.start).Seconds() }

// note records an event now.
func (t *timeline) note(who, format string, args ...any) {
	t.noteAt(t.clk.Mono(), who, format, args...)
}

// noteAt records an event at a monotonic reading taken earlier.
func (t *timeline) noteAt(mono time.Duration, who, format string, args ...any) {
	e := Event{At: t.since(mono), Who: who, What: fmt.Sprintf(format, args...)}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.last[who] == e.What {
		return // a retry loop saying the same thing again
	}
	t.mu.last[who] = e.What
	if len(t.mu.events) >= maxEvents {
		t.mu.dropped++
		return
	}
	t.mu.events = append(t.mu.events, e)
	if t.mu.out != nil {
		fmt.Fprintln(t.mu.out, e)
	}
}

// events returns a copy of the events so far and the number dropped.
func (t *timeline) events() ([]Event, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Event(nil), t.mu.events...), t.mu.dropped
}
