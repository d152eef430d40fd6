package mig_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
)

// racingClock moves step nanoseconds of time forward on every reading. At
// 38 ns it never runs dry at one goroutine (26.2 M IDs/s would need 38.1
// ns), so the benchmark measures the generator's own cost, clock read
// included.
type racingClock struct {
	ns   atomic.Int64
	step int64
}

func newRacingClock(step int64) *racingClock {
	c := &racingClock{step: step}
	c.ns.Store(t0.UnixNano())
	return c
}

func (c *racingClock) UnixNano() int64 { return c.ns.Add(c.step) }

func (c *racingClock) After(time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func benchGen(b *testing.B, c mig.Clock) *mig.Generator {
	b.Helper()
	g, err := mig.New(mig.Config{Layout: testLayout, Worker: 1}, c, mig.NewMemCeiling(mig.MaxTick))
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func reportRate(b *testing.B, ids int) {
	b.ReportMetric(float64(ids)/b.Elapsed().Seconds()/1e6, "MIDs/s")
}

// BenchmarkNextOwnCost is the generator's cost per ID, single goroutine,
// with a clock that never runs dry.
func BenchmarkNextOwnCost(b *testing.B) {
	c := newRacingClock(38)
	g := benchGen(b, c)
	for b.Loop() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N)
}

// BenchmarkNextOwnCostParallel is the same from GOMAXPROCS goroutines.
func BenchmarkNextOwnCostParallel(b *testing.B) {
	c := newRacingClock(38)
	g := benchGen(b, c)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, b.N)
}

// realIDClock is the production ID clock: the host's clock, slewed, read
// through the coarse cache.
func realIDClock(b *testing.B) *clock.Coarse {
	s, err := clock.NewSlewing(clock.NewReal(), clock.SlewConfig{})
	if err != nil {
		b.Fatal(err)
	}
	c := clock.NewCoarse(s, 0)
	b.Cleanup(c.Close)
	return c
}

// BenchmarkNextRealClock is one generator on the real clock, single
// goroutine: the format caps it at 26.2 M IDs/s (262,144 per 10 ms tick),
// so past the borrow bound it waits for the clock.
func BenchmarkNextRealClock(b *testing.B) {
	g := benchGen(b, realIDClock(b))
	for b.Loop() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N)
}

// BenchmarkNextRealClockParallel is the same from GOMAXPROCS goroutines.
func BenchmarkNextRealClockParallel(b *testing.B) {
	g := benchGen(b, realIDClock(b))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, b.N)
}

// BenchmarkNextNRealClock reserves batches of 1000 on the real clock.
func BenchmarkNextNRealClock(b *testing.B) {
	g := benchGen(b, realIDClock(b))
	for b.Loop() {
		if _, err := g.NextN(1000); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N*1000)
}
