package mig_test

import (
	"sync/atomic"
	"testing"
	"time"

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
