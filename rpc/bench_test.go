package rpc_test

import (
	"runtime"
	"testing"
)

// benchGoroutines is how many callers the loopback benchmarks run at once.
const benchGoroutines = 50

// benchNextIDs measures NextIDs of count IDs over a real loopback listener,
// protobuf, from about benchGoroutines concurrent callers sharing one
// client.
func benchNextIDs(b *testing.B, count int) {
	_, ts := serve(b, newRealIssuer(b))
	c := newClient(b, []string{ts.URL})
	if _, _, err := c.NextIDs(b.Context(), count); err != nil { // warm up a connection
		b.Fatal(err)
	}
	// RunParallel starts parallelism*GOMAXPROCS goroutines.
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchGoroutines + procs - 1) / procs)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ids, _, err := c.NextIDs(b.Context(), count)
			if err != nil {
				b.Error(err)
				return
			}
			if len(ids) != count {
				b.Errorf("%d IDs, want %d", len(ids), count)
				return
			}
		}
	})
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	if secs > 0 {
		b.ReportMetric(float64(b.N)/secs, "req/s")
		b.ReportMetric(float64(b.N)*float64(count)/secs, "IDs/s")
	}
}

// BenchmarkNextIDsLoopback is one ID per request: the cost of a round trip.
func BenchmarkNextIDsLoopback(b *testing.B) { benchNextIDs(b, 1) }

// BenchmarkNextIDsLoopbackBatch1000 is 1000 IDs per request: throughput in
// IDs.
func BenchmarkNextIDsLoopbackBatch1000(b *testing.B) { benchNextIDs(b, 1000) }
