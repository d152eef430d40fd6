package rpc_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migv1"
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

// BenchmarkFastNextIDs is the server's own work for one single-ID NextIDs
// over protobuf on the fast route, without the network: decode, issue,
// encode, count, with the writer and messages reused as a connection
// reuses them.
func BenchmarkFastNextIDs(b *testing.B) {
	s, err := rpc.NewServer(newRealIssuer(b))
	if err != nil {
		b.Fatal(err)
	}
	fast := s.FastHandlers()[migv1.IDServicePathPrefix+"NextIDs"]
	var local any
	req := &h1.FastRequest{Context: b.Context(), ContentType: []byte("application/protobuf"), Body: []byte{0x08, 0x01}, Local: &local}
	var w h1.ResponseWriter
	b.ReportAllocs()
	for b.Loop() {
		w.Reset()
		if !fast(&w, req) || w.Status() != http.StatusOK {
			b.Fatalf("declined or failed: %d %q", w.Status(), w.Body())
		}
	}
}

// BenchmarkHandlerNextIDs is BenchmarkFastNextIDs through Handler, Twirp's
// generated handler with its hooks, as JSON requests and every request
// before internal/h1 took it.
func BenchmarkHandlerNextIDs(b *testing.B) {
	s, err := rpc.NewServer(newRealIssuer(b))
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	body := []byte{0x08, 0x01}
	rd := bytes.NewReader(body)
	req := httptest.NewRequest(http.MethodPost, migv1.IDServicePathPrefix+"NextIDs", rd)
	req.Header.Set("Content-Type", "application/protobuf")
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
