package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/loadtest"
)

// openLoads are the loads the open-loop sub-benchmarks run at, as
// fractions of the closed loop's rate: the issues' 80%, and half of it for
// the shape of the curve below.
var openLoads = []float64{0.5, 0.8}

// benchClients is how many clients the benchmarks run at once, each with
// one request outstanding at a time: the -c 50 of redis-benchmark, which
// docs/benchmarks.md compares against.
const benchClients = 50

// BenchmarkServe measures a real `mig serve` process over loopback: the
// mig binary built and started with its embedded etcd (or the server at
// $MIG_BENCH_ADDR, host:port, when set), called over protobuf by
// benchClients clients. Three kinds of client:
//
//   - raw: NextIDs over one HTTP/1.1 connection per caller, speaking the
//     protocol directly with a request encoded once (loadtest.WireConn),
//     as redis-benchmark speaks RESP directly. It allocates nothing per
//     request and leaves more of the machine's cores to the server, which
//     shares them.
//   - seq: the same for NextSeq, each caller advancing a uid of its own
//     and checking that its values increase.
//   - rpc: NextIDs through one migclient.Client shared by the callers, as
//     applications call MIG.
//
// The sub-benchmarks:
//
//   - count=1: single-ID NextIDs (one NextSeq) as fast as the callers can
//     go (closed loop): requests/s and latency percentiles.
//   - count=1/rate=50% and rate=80%: the same sent at that share of the
//     rate count=1 reached with the same client (open loop), for latency
//     under a load the server keeps up with.
//   - count=1000: NextIDs batches of 1000, for IDs/s.
//
// A two-second warm-up precedes them.
func BenchmarkServe(b *testing.B) {
	addr := os.Getenv("MIG_BENCH_ADDR")
	if addr == "" {
		p := startProcess(b, buildMig(b), "--data-dir", b.TempDir())
		addr = p.address()
	}
	shared := newRPCClient(b, []string{addr})
	var uids atomic.Uint64
	clients := []struct {
		name    string
		caller  func(b *testing.B) loadtest.Caller
		batches bool // count=1000 means something
	}{
		{"raw", func(b *testing.B) loadtest.Caller { return dialWire(b, addr, loadtest.NewIDConn) }, true},
		{"seq", func(b *testing.B) loadtest.Caller {
			uid := uids.Add(1)
			return dialWire(b, addr, func(c net.Conn) *loadtest.WireConn { return loadtest.NewSeqConn(c, uid) })
		}, false},
		{"rpc", func(*testing.B) loadtest.Caller { return loadtest.ClientCaller{IDs: shared} }, true},
	}
	warm := true
	for _, cl := range clients {
		var maxRate float64 // of count=1, from its last (longest) run
		if warm {
			measureMax(b, cl.caller)
			warm = false
		}
		b.Run("client="+cl.name+"/count=1", func(b *testing.B) {
			rate := closedLoop(b, cl.caller, 1)
			if b.Elapsed() >= time.Second { // not a probe with b.N 1
				maxRate = rate
			}
		})
		for _, load := range openLoads {
			b.Run(fmt.Sprintf("client=%s/count=1/rate=%.0f%%", cl.name, 100*load), func(b *testing.B) {
				if maxRate == 0 { // run alone: measure the maximum first
					maxRate = measureMax(b, cl.caller)
				}
				openLoop(b, cl.caller, load*maxRate)
			})
		}
		if cl.batches {
			b.Run("client="+cl.name+"/count=1000", func(b *testing.B) {
				closedLoop(b, cl.caller, 1000)
			})
		}
	}
}

// BenchmarkRedisINCR runs the same harness against Redis, when
// $MIG_BENCH_REDIS (host:port) names a redis-server, and skips otherwise:
// count=1 is INCR and count=1000 is INCRBY 1000 (how LINE reserved message
// IDs before MIG), over one RESP connection per caller: the client `mig
// loadtest --redis` uses. It shows what the harness itself costs next to
// redis-benchmark, which docs/benchmarks.md reports too.
func BenchmarkRedisINCR(b *testing.B) {
	addr := os.Getenv("MIG_BENCH_REDIS")
	if addr == "" {
		b.Skip("set MIG_BENCH_REDIS=host:port of a redis-server to compare with")
	}
	newCaller := func(b *testing.B) loadtest.Caller {
		c, err := loadtest.DialRedis(b.Context(), clock.NewReal(), addr, "mig:bench", 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	var maxRate float64
	measureMax(b, newCaller)
	b.Run("count=1", func(b *testing.B) {
		rate := closedLoop(b, newCaller, 1)
		if b.Elapsed() >= time.Second { // not a probe with b.N 1
			maxRate = rate
		}
	})
	for _, load := range openLoads {
		b.Run(fmt.Sprintf("count=1/rate=%.0f%%", 100*load), func(b *testing.B) {
			if maxRate == 0 {
				maxRate = measureMax(b, newCaller)
			}
			openLoop(b, newCaller, load*maxRate)
		})
	}
	b.Run("count=1000", func(b *testing.B) { closedLoop(b, newCaller, 1000) })
}

// dialWire returns a caller over a new connection to addr, made by mk.
func dialWire(b *testing.B, addr string, mk func(net.Conn) *loadtest.WireConn) loadtest.Caller {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return mk(conn)
}

// bench returns the harness's loops over benchClients callers made by
// newCaller, timed by b. The calls' context never ends (a benchmark
// bounds them by count), so that watching it costs nothing.
func bench(b *testing.B, newCaller func(*testing.B) loadtest.Caller) (loadtest.Bench, context.Context) {
	callers := make([]loadtest.Caller, benchClients)
	for i := range callers {
		callers[i] = newCaller(b)
	}
	return loadtest.Bench{
		Clock:   clock.NewReal(),
		Callers: callers,
		Start:   b.ResetTimer,
		Stop:    b.StopTimer,
		Failed:  func(err error) { b.Error(err) },
	}, context.Background()
}

// closedLoop makes b.N calls for count values as fast as the callers go,
// reports requests/s, IDs/s and latency percentiles, and returns
// requests/s.
func closedLoop(b *testing.B, newCaller func(*testing.B) loadtest.Caller, count int) float64 {
	h, ctx := bench(b, newCaller)
	lat := h.Closed(ctx, b.N, count)
	rate := float64(b.N) / b.Elapsed().Seconds()
	report(b, lat, rate, count)
	return rate
}

// openLoop makes b.N single-value calls at rate per second and reports
// the latency percentiles (see loadtest.Bench.Open).
func openLoop(b *testing.B, newCaller func(*testing.B) loadtest.Caller, rate float64) {
	h, ctx := bench(b, newCaller)
	lat := h.Open(ctx, b.N, rate)
	b.ReportMetric(rate, "target-req/s")
	report(b, lat, float64(b.N)/b.Elapsed().Seconds(), 1)
}

// measureMax runs two seconds of single-value calls as fast as they go
// and returns the requests/s reached.
func measureMax(b *testing.B, newCaller func(*testing.B) loadtest.Caller) float64 {
	h, ctx := bench(b, newCaller)
	return h.Max(ctx, 2*time.Second)
}

// report reports the rate (in IDs too, for batches) and the latency
// percentiles of sorted.
func report(b *testing.B, sorted []time.Duration, reqPerSec float64, count int) {
	b.ReportMetric(reqPerSec, "req/s")
	if count > 1 {
		b.ReportMetric(reqPerSec*float64(count), "IDs/s")
	}
	for _, p := range []struct {
		q    float64
		unit string
	}{{0.5, "p50-µs"}, {0.99, "p99-µs"}, {0.999, "p99.9-µs"}} {
		b.ReportMetric(float64(loadtest.Percentile(sorted, p.q))/float64(time.Microsecond), p.unit)
	}
}

// BenchmarkHostPauses measures how often this machine keeps a busy thread
// off its core: one thread per core (GOMAXPROCS of them) reads the clock
// for b.N milliseconds (loadtest.MeasurePauses), and the benchmark
// reports the gaps longer than 1 ms and 3 ms per second of one core, and
// the longest. Run it alone: anything else running shows as pauses.
func BenchmarkHostPauses(b *testing.B) {
	b.ResetTimer()
	p := loadtest.MeasurePauses(clock.NewReal(), runtime.GOMAXPROCS(0), time.Duration(b.N)*time.Millisecond)
	b.StopTimer()
	b.ReportMetric(float64(p.Over1ms)/p.CoreSeconds, "pauses>1ms/core-s")
	b.ReportMetric(float64(p.Over3ms)/p.CoreSeconds, "pauses>3ms/core-s")
	b.ReportMetric(float64(p.Longest)/float64(time.Millisecond), "longest-ms")
}
