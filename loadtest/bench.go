package loadtest

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migsvc/mig/clock"
)

// Bench runs a fixed number of calls through [Caller]s, one goroutine
// each, for a Go benchmark (cmd/mig's BenchmarkServe and
// BenchmarkRedisINCR): redis-benchmark's shape, many connections with one
// request outstanding on each. Unlike [Run] it checks each answer only
// as its Caller does and keeps no history, and it allocates nothing per
// call: latencies are stored by call index in a slice made beforehand.
// A plain value; run one of its loops at a time.
type Bench struct {
	Clock   clock.Source
	Callers []Caller
	// Start, if set, is called once the load is ready, just before the
	// first call; Stop just after the last answer. A benchmark resets and
	// stops its timer there.
	Start, Stop func()
	// Failed, if set, is called with the error of every failed call,
	// from the callers' goroutines.
	Failed func(error)
}

// Closed makes n calls for count values, each goroutine sending its next
// as soon as its last is answered, and returns their latencies, sorted.
func (b Bench) Closed(ctx context.Context, n, count int) []time.Duration {
	var next atomic.Int64
	return b.run(n, func(c Caller, lat []time.Duration) {
		for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
			start := b.Clock.Mono()
			b.check(c.Call(ctx, count))
			lat[i] = b.Clock.Mono() - start
		}
	}, nil)
}

// Open makes n single-value calls at rate per second on a fixed schedule
// and returns their latencies, sorted.
//
// One pacer goroutine releases the calls as they fall due, in batches of
// those due since its last wake, to whichever caller is free; a caller
// sends as soon as it takes one. A call's latency counts from when it
// was due, so a call waiting for a free caller, behind a slow answer,
// has that wait counted (no coordinated omission). If the pacer's timer
// woke late, the call counts from that wake instead: the timer's
// lateness is the load generator's, not the server's. (Go rounds a timer
// under a millisecond up to one when the process has nothing else to
// do, and a timer per call costs the client more CPU than the call.)
func (b Bench) Open(ctx context.Context, n int, rate float64) []time.Duration {
	interval := float64(time.Second) / rate
	type ticket struct {
		i             int
		due, released time.Duration
	}
	tickets := make(chan ticket, n)
	var pacer sync.WaitGroup
	defer pacer.Wait()
	return b.run(n, func(c Caller, lat []time.Duration) {
		for t := range tickets {
			start := max(t.due, t.released)
			b.check(c.Call(ctx, 1))
			lat[t.i] = b.Clock.Mono() - start
		}
	}, func() {
		begin := b.Clock.Mono()
		pacer.Go(func() {
			defer close(tickets)
			for i := 0; i < n; {
				now := b.Clock.Mono()
				for ; i < n; i++ {
					due := begin + time.Duration(float64(i)*interval)
					if due > now {
						<-b.Clock.After(due - now)
						break
					}
					tickets <- ticket{i, due, now}
				}
			}
		})
	})
}

// Max makes single-value calls as fast as they go for d and returns the
// calls per second reached: the rate Open's loads are fractions of.
func (b Bench) Max(ctx context.Context, d time.Duration) float64 {
	start := b.Clock.Mono()
	var n atomic.Int64
	b.Start, b.Stop = nil, nil
	b.run(0, func(c Caller, _ []time.Duration) {
		for b.Clock.Mono()-start < d {
			b.check(c.Call(ctx, 1))
			n.Add(1)
		}
	}, nil)
	return float64(n.Load()) / (b.Clock.Mono() - start).Seconds()
}

// run runs loop on a goroutine per caller, between Start and Stop, with
// n latencies to fill, and returns them sorted. before, if not nil, runs
// just before Start.
func (b Bench) run(n int, loop func(c Caller, lat []time.Duration), before func()) []time.Duration {
	lat := make([]time.Duration, n)
	if before != nil {
		before()
	}
	if b.Start != nil {
		b.Start()
	}
	var wg sync.WaitGroup
	for _, c := range b.Callers {
		wg.Go(func() { loop(c, lat) })
	}
	wg.Wait()
	if b.Stop != nil {
		b.Stop()
	}
	slices.Sort(lat)
	return lat
}

func (b Bench) check(err error) {
	if err != nil && b.Failed != nil {
		b.Failed(err)
	}
}

// Percentile returns the smallest latency that at least q of sorted are
// not above (nearest rank); 0 for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
