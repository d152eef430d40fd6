package seqfacade_test

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/seqfacade"
)

// benchNode starts a serving node against an embedded etcd, with the real
// clock and lease: Next's cost includes its deadline check.
func benchNode(b *testing.B, cfg seqfacade.Config) *seqfacade.Node {
	b.Helper()
	srv := etcdtest.Start(b)
	cli := etcdtest.Client(b, srv.Endpoints()...)
	// The defaults: a busy benchmark must not lose its right to serve.
	cfg.Lease, cfg.ActivationDelay, cfg.Margin = lease.Config{}, 0, 0
	return mustServe(b, cli, cfg, clock.NewReal())
}

func next(b *testing.B, n *seqfacade.Node, uid uint64) {
	if _, err := n.Next(b.Context(), uid); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNext measures one goroutine's Next: over every uid of one
// section (the hot path: no uid comes near a step), on one uid with a
// step it never exhausts (the hot path again), and on one uid at the
// default step, where a write of etcd's is needed every 10,000 values and
// one goroutine consumes them faster than etcd writes.
func BenchmarkNext(b *testing.B) {
	b.Run("uniform-section", func(b *testing.B) {
		n := benchNode(b, fastConfig("bench"))
		next(b, n, 1)
		u := uint64(0)
		for b.Loop() {
			u = u%99_999 + 1
			next(b, n, u)
		}
		reportStats(b, n, seqfacade.Stats{})
	})
	b.Run("one-uid-large-step", func(b *testing.B) {
		cfg := fastConfig("bench")
		cfg.Step = seqfacade.MaxStep
		n := benchNode(b, cfg)
		next(b, n, 1)
		for b.Loop() {
			next(b, n, 1)
		}
		reportStats(b, n, seqfacade.Stats{})
	})
	b.Run("one-uid-default-step", func(b *testing.B) {
		n := benchNode(b, fastConfig("bench"))
		next(b, n, 1)
		before := n.Stats()
		for b.Loop() {
			next(b, n, 1)
		}
		reportStats(b, n, before)
	})
}

// BenchmarkNextParallel: goroutines on distinct uids of one section, and
// all on the same uid.
func BenchmarkNextParallel(b *testing.B) {
	b.Run("distinct-uids", func(b *testing.B) {
		n := benchNode(b, fastConfig("bench"))
		next(b, n, 1)
		var g atomic.Uint64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			base := 1 + g.Add(1)*1000 // a cache line of its own
			u := uint64(0)
			for pb.Next() {
				u = (u + 1) % 1000
				if _, err := n.Next(b.Context(), base+u); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("same-uid", func(b *testing.B) {
		cfg := fastConfig("bench")
		cfg.Step = seqfacade.MaxStep
		n := benchNode(b, cfg)
		next(b, n, 1)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := n.Next(b.Context(), 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkNextBatch: a group message to 100 members of one section.
func BenchmarkNextBatch(b *testing.B) {
	n := benchNode(b, fastConfig("bench"))
	uids := make([]uint64, 100)
	for i := range uids {
		uids[i] = uint64(1 + 997*i)
	}
	for b.Loop() {
		if _, err := n.NextBatch(b.Context(), uids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(uids)), "ns/uid")
}

// BenchmarkWritesPerMillion counts etcd writes per million calls at the
// default step, each million in a fresh section: on one hot uid (one
// write per step: 101 with the first) and spread over every uid of the
// section (ten values each: only the first write).
func BenchmarkWritesPerMillion(b *testing.B) {
	for _, tc := range []struct {
		name string
		uid  func(i uint64) uint64
	}{
		{"hot-uid", func(uint64) uint64 { return 1 }},
		{"uniform-section", func(i uint64) uint64 { return i % 100_000 }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := benchNode(b, fastConfig("bench"))
			before := n.Stats()
			sec := uint64(0)
			for b.Loop() {
				sec++
				for i := range uint64(1_000_000) {
					next(b, n, sec*seqfacade.DefaultSectionSize+tc.uid(i))
				}
			}
			b.ReportMetric(float64(n.Stats().Writes-before.Writes)/float64(b.N), "writes/1M-calls")
		})
	}
}

// BenchmarkMemoryPerUID measures the heap one loaded section costs, per
// uid: 8 bytes of cur_seq plus the section's share of fixed overhead.
func BenchmarkMemoryPerUID(b *testing.B) {
	const sections = 16
	n := benchNode(b, fastConfig("bench"))
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for s := range uint64(sections) {
		next(b, n, 1+s*seqfacade.DefaultSectionSize)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	for b.Loop() {
	}
	uids := float64(sections * seqfacade.DefaultSectionSize)
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/uids, "heap-B/uid")
	b.ReportMetric(float64(n.Stats().CurSeqBytes)/uids, "cur_seq-B/uid")
}

func reportStats(b *testing.B, n *seqfacade.Node, before seqfacade.Stats) {
	s := n.Stats()
	b.ReportMetric(float64(s.Waits-before.Waits)/float64(b.N), "waits/op")
	b.ReportMetric(float64(s.Writes-before.Writes)/float64(b.N)*1e6, "writes/1M-calls")
}
