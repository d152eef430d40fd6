package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migv1"
)

// benchClients is how many clients the benchmarks run at once, each with
// one request outstanding at a time: the -c 50 of redis-benchmark, which
// docs/benchmarks.md compares against.
const benchClients = 50

// BenchmarkServe measures a real `mig serve` process over loopback: the
// mig binary built and started with its embedded etcd (or the server at
// $MIG_BENCH_ADDR, host:port, when set), called over protobuf by
// benchClients clients. Two kinds of client:
//
//   - rpc: one rpc.Client shared by the callers, as applications call MIG.
//   - raw: one HTTP/1.1 connection per caller, speaking the protocol
//     directly with a request encoded once (see rawConn), as
//     redis-benchmark speaks RESP directly. It leaves more of the machine's
//     cores to the server, which shares them.
//
// The sub-benchmarks:
//
//   - count=1: single-ID NextIDs as fast as the callers can go (closed
//     loop): requests/s and latency percentiles.
//   - count=1/rate=80%: single-ID NextIDs sent at 80% of the rate that
//     count=1 reached with the same client (open loop), for latency under a
//     load the server keeps up with.
//   - count=1000: batches of 1000, for IDs/s.
//
// A two-second warm-up precedes them. `mig loadtest` will take this over.
func BenchmarkServe(b *testing.B) {
	addr := os.Getenv("MIG_BENCH_ADDR")
	if addr == "" {
		p := startProcess(b, buildMig(b), "--data-dir", b.TempDir())
		addr = p.address()
	}
	shared := newRPCClient(b, []string{addr})
	clients := []struct {
		name   string
		caller func(b *testing.B) caller
	}{
		{"raw", func(b *testing.B) caller { return newRawConn(b, addr) }},
		{"rpc", func(*testing.B) caller { return rpcCaller{shared} }},
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
		b.Run("client="+cl.name+"/count=1/rate=80%", func(b *testing.B) {
			if maxRate == 0 { // run alone: measure the maximum first
				maxRate = measureMax(b, cl.caller)
			}
			openLoop(b, cl.caller, 0.8*maxRate)
		})
		b.Run("client="+cl.name+"/count=1000", func(b *testing.B) {
			closedLoop(b, cl.caller, 1000)
		})
	}
}

// BenchmarkRedisINCR runs the same harness against Redis, when
// $MIG_BENCH_REDIS (host:port) names a redis-server, and skips otherwise:
// count=1 is INCR and count=1000 is INCRBY 1000 (how LINE reserved message
// IDs before MIG), over one RESP connection per caller. It shows what the
// harness itself costs next to redis-benchmark, which docs/benchmarks.md
// reports too.
func BenchmarkRedisINCR(b *testing.B) {
	addr := os.Getenv("MIG_BENCH_REDIS")
	if addr == "" {
		b.Skip("set MIG_BENCH_REDIS=host:port of a redis-server to compare with")
	}
	newCaller := func(b *testing.B) caller { return newRESPConn(b, addr) }
	var maxRate float64
	measureMax(b, newCaller)
	b.Run("count=1", func(b *testing.B) {
		rate := closedLoop(b, newCaller, 1)
		if b.Elapsed() >= time.Second { // not a probe with b.N 1
			maxRate = rate
		}
	})
	b.Run("count=1/rate=80%", func(b *testing.B) {
		if maxRate == 0 {
			maxRate = measureMax(b, newCaller)
		}
		openLoop(b, newCaller, 0.8*maxRate)
	})
	b.Run("count=1000", func(b *testing.B) { closedLoop(b, newCaller, 1000) })
}

// respConn sends INCR (count 1) or INCRBY count to Redis and reads the
// integer answer. Not safe for concurrent use.
type respConn struct {
	conn net.Conn
	br   *bufio.Reader
	last int64
}

func newRESPConn(b *testing.B, addr string) *respConn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &respConn{conn: conn, br: bufio.NewReader(conn)}
}

func (r *respConn) call(_ context.Context, count int) error {
	var req []byte
	if count == 1 {
		req = []byte("*2\r\n$4\r\nINCR\r\n$9\r\nmig:bench\r\n")
	} else {
		n := strconv.Itoa(count)
		req = fmt.Appendf(nil, "*3\r\n$6\r\nINCRBY\r\n$9\r\nmig:bench\r\n$%d\r\n%s\r\n", len(n), n)
	}
	if _, err := r.conn.Write(req); err != nil {
		return err
	}
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 4 || line[0] != ':' {
		return fmt.Errorf("answer %q", line)
	}
	v, err := strconv.ParseInt(string(line[1:len(line)-2]), 10, 64)
	if err != nil || v <= r.last {
		return fmt.Errorf("answer %q after %d", line, r.last)
	}
	r.last = v
	return nil
}

// A caller makes NextIDs calls for one benchmark goroutine and checks
// that each answer holds count IDs.
type caller interface {
	call(ctx context.Context, count int) error
}

type rpcCaller struct{ c *rpc.Client }

func (r rpcCaller) call(ctx context.Context, count int) error {
	ids, _, err := r.c.NextIDs(ctx, count)
	if err == nil && len(ids) != count {
		err = fmt.Errorf("%d IDs for a count of %d", len(ids), count)
	}
	return err
}

// rawConn is one keep-alive HTTP/1.1 connection that sends NextIDs
// requests encoded once per count, and reads the answers with no more
// than their Content-Length and a protobuf decode. Not safe for
// concurrent use.
type rawConn struct {
	conn net.Conn
	br   *bufio.Reader
	host string
	reqs map[int][]byte
	resp migv1.NextIDsResponse
	body []byte
}

func newRawConn(b *testing.B, addr string) *rawConn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &rawConn{conn: conn, br: bufio.NewReader(conn), host: addr, reqs: map[int][]byte{}}
}

func (r *rawConn) call(_ context.Context, count int) error {
	req, ok := r.reqs[count]
	if !ok {
		n := int32(count)
		body, err := proto.Marshal(&migv1.NextIDsRequest{Count: &n})
		if err != nil {
			return err
		}
		req = fmt.Appendf(nil, "POST /twirp/mig.v1.IDService/NextIDs HTTP/1.1\r\nHost: %s\r\n"+
			"Content-Type: application/protobuf\r\nContent-Length: %d\r\n\r\n%s", r.host, len(body), body)
		r.reqs[count] = req
	}
	if _, err := r.conn.Write(req); err != nil {
		return err
	}
	status, err := r.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("answer %q", status)
	}
	length := -1
	for {
		line, err := r.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "Content-Length") {
			length, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return fmt.Errorf("header %q", line)
			}
		}
	}
	if length < 0 {
		return errors.New("answer without Content-Length")
	}
	if cap(r.body) < length {
		r.body = make([]byte, length)
	}
	r.body = r.body[:length]
	if _, err := io.ReadFull(r.br, r.body); err != nil {
		return err
	}
	if err := proto.Unmarshal(r.body, &r.resp); err != nil {
		return err
	}
	if len(r.resp.Ids) != count {
		return fmt.Errorf("%d IDs for a count of %d", len(r.resp.Ids), count)
	}
	return nil
}

// closedLoop makes b.N NextIDs calls of count IDs from benchClients
// goroutines, each sending its next request when the last is answered. It
// reports requests/s, IDs/s and latency percentiles, and returns
// requests/s.
func closedLoop(b *testing.B, newCaller func(*testing.B) caller, count int) float64 {
	src := clock.NewReal()
	var next atomic.Int64
	lat := collect(b, newCaller, func(c caller, record func(time.Duration)) {
		for next.Add(1) <= int64(b.N) {
			start := src.Mono()
			check(b, c.call(b.Context(), count))
			record(src.Mono() - start)
		}
	})
	rate := float64(b.N) / b.Elapsed().Seconds()
	report(b, lat, rate, count)
	return rate
}

// openLoop sends b.N single-ID NextIDs calls at rate per second, on a
// fixed schedule, from benchClients goroutines, and reports the latency
// percentiles.
//
// One pacer goroutine releases the requests as they fall due, in batches
// of those due since its last wake, to whichever client is free; a client
// sends as soon as it takes one. A request's latency counts from when it
// was due, so a request waiting for a free client, behind a slow answer,
// has that wait counted (no coordinated omission). If the pacer's timer
// woke late, the request counts from that wake instead: the timer's
// lateness is the load generator's, not the server's. Go rounds a timer
// under a millisecond up to one when the process has nothing else to do,
// and per-request timers cost the client more CPU than the request.
func openLoop(b *testing.B, newCaller func(*testing.B) caller, rate float64) {
	src := clock.NewReal()
	interval := float64(time.Second) / rate
	type ticket struct{ due, released time.Duration }
	tickets := make(chan ticket, b.N)
	var pacer sync.WaitGroup
	defer pacer.Wait()
	lat := collect(b, newCaller, func(c caller, record func(time.Duration)) {
		for t := range tickets {
			start := max(t.due, t.released)
			check(b, c.call(b.Context(), 1))
			record(src.Mono() - start)
		}
	}, func() {
		begin := src.Mono()
		pacer.Go(func() {
			defer close(tickets)
			for i := 0; i < b.N; {
				now := src.Mono()
				for ; i < b.N; i++ {
					due := begin + time.Duration(float64(i)*interval)
					if due > now {
						<-src.After(due - now)
						break
					}
					tickets <- ticket{due, now}
				}
			}
		})
	})
	b.ReportMetric(rate, "target-req/s")
	report(b, lat, float64(b.N)/b.Elapsed().Seconds(), 1)
}

// measureMax runs two seconds of single-ID calls as fast as they go and
// returns the requests/s reached.
func measureMax(b *testing.B, newCaller func(*testing.B) caller) float64 {
	src := clock.NewReal()
	start := src.Mono()
	var n atomic.Int64
	collect(b, newCaller, func(c caller, record func(time.Duration)) {
		for src.Mono()-start < 2*time.Second {
			check(b, c.call(b.Context(), 1))
			n.Add(1)
		}
	})
	return float64(n.Load()) / (src.Mono() - start).Seconds()
}

// collect makes benchClients callers, then runs loop in a goroutine for
// each with the timer running, and returns every latency they recorded,
// sorted. before, if given, runs once the callers are ready, just before
// the timer starts.
func collect(b *testing.B, newCaller func(*testing.B) caller, loop func(caller, func(time.Duration)), before ...func()) []time.Duration {
	callers := make([]caller, benchClients)
	for i := range callers {
		callers[i] = newCaller(b)
	}
	var (
		mu  sync.Mutex
		all []time.Duration
		wg  sync.WaitGroup
	)
	for _, f := range before {
		f()
	}
	b.ResetTimer()
	for _, c := range callers {
		wg.Go(func() {
			var mine []time.Duration
			loop(c, func(d time.Duration) { mine = append(mine, d) })
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(all)
	return all
}

func check(b *testing.B, err error) {
	if err != nil {
		b.Error(err)
	}
}

// report reports the rate and the latency percentiles of sorted.
func report(b *testing.B, sorted []time.Duration, reqPerSec float64, count int) {
	b.ReportMetric(reqPerSec, "req/s")
	b.ReportMetric(reqPerSec*float64(count), "IDs/s")
	for _, p := range []struct {
		q    float64
		unit string
	}{{0.5, "p50-µs"}, {0.99, "p99-µs"}, {0.999, "p99.9-µs"}} {
		b.ReportMetric(float64(percentile(sorted, p.q))/float64(time.Microsecond), p.unit)
	}
}

// percentile returns the smallest latency that at least q of sorted are
// not above (nearest rank); 0 for none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var d []time.Duration
		for _, n := range ns {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tt := range []struct {
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.5, 7 * time.Millisecond},
		{ms(7), 0.999, 7 * time.Millisecond},
		{ms(1, 2), 0.5, 1 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(hundred...), 0.5, 50 * time.Millisecond},
		{ms(hundred...), 0.99, 99 * time.Millisecond},
		{ms(hundred...), 0.999, 100 * time.Millisecond},
		{ms(hundred...), 0, 1 * time.Millisecond},
	} {
		if got := percentile(tt.sorted, tt.q); got != tt.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.q, got, tt.want)
		}
	}
}
