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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/rpc/migv1"
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
//     protocol directly with a request encoded once (see rawConn), as
//     redis-benchmark speaks RESP directly. It allocates nothing per
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
		caller  func(b *testing.B) caller
		batches bool // count=1000 means something
	}{
		{"raw", func(b *testing.B) caller { return newIDConn(b, addr) }, true},
		{"seq", func(b *testing.B) caller { return newSeqConn(b, addr, uids.Add(1)) }, false},
		{"rpc", func(*testing.B) caller { return rpcCaller{shared} }, true},
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

// respConn sends INCR (count 1) or INCRBY count to Redis and reads the
// integer answer. Not safe for concurrent use.
type respConn struct {
	conn net.Conn
	br   *bufio.Reader
	reqs map[int][]byte // by count, encoded once
	last int64
}

func newRESPConn(b *testing.B, addr string) *respConn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &respConn{conn: conn, br: bufio.NewReader(conn), reqs: map[int][]byte{}}
}

func (r *respConn) call(_ context.Context, count int) error {
	req, ok := r.reqs[count]
	if !ok {
		if count == 1 {
			req = []byte("*2\r\n$4\r\nINCR\r\n$9\r\nmig:bench\r\n")
		} else {
			n := strconv.Itoa(count)
			req = fmt.Appendf(nil, "*3\r\n$6\r\nINCRBY\r\n$9\r\nmig:bench\r\n$%d\r\n%s\r\n", len(n), n)
		}
		r.reqs[count] = req
	}
	if _, err := r.conn.Write(req); err != nil {
		return err
	}
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	v, ok := parseRESPInt(line)
	if !ok || v <= r.last {
		return fmt.Errorf("answer %q after %d", line, r.last)
	}
	r.last = v
	return nil
}

// parseRESPInt parses a RESP integer answer of non-negative value,
// ":123\r\n", without allocating.
func parseRESPInt(line []byte) (int64, bool) {
	if len(line) < 4 || line[0] != ':' || !bytes.HasSuffix(line, []byte("\r\n")) {
		return 0, false
	}
	return parseDigits(line[1 : len(line)-2])
}

// A caller makes NextIDs calls for one benchmark goroutine and checks
// that each answer holds count IDs.
type caller interface {
	call(ctx context.Context, count int) error
}

type rpcCaller struct{ c *migclient.Client }

func (r rpcCaller) call(ctx context.Context, count int) error {
	ids, _, err := r.c.NextIDs(ctx, count)
	if err == nil && len(ids) != count {
		err = fmt.Errorf("%d IDs for a count of %d", len(ids), count)
	}
	return err
}

// rawConn is one keep-alive HTTP/1.1 connection that posts protobuf
// requests encoded once per count, reads each answer with no more than
// its Content-Length, and has check judge its body, all without
// allocating. Not safe for concurrent use.
type rawConn struct {
	conn   net.Conn
	br     *bufio.Reader
	reqs   map[int][]byte                // by count: the whole request
	encode func(count int) proto.Message // a count's request message
	path   string
	check  func(body []byte, count int) error
	body   []byte
}

func newRawConn(b *testing.B, addr, path string, encode func(int) proto.Message, check func([]byte, int) error) *rawConn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &rawConn{conn: conn, br: bufio.NewReader(conn), reqs: map[int][]byte{}, encode: encode, path: path, check: check}
}

// newIDConn is a rawConn calling NextIDs, which checks that an answer
// holds count IDs.
func newIDConn(b *testing.B, addr string) *rawConn {
	return newRawConn(b, addr, migv1.IDServicePathPrefix+"NextIDs",
		func(count int) proto.Message { return &migv1.NextIDsRequest{Count: proto.Int32(int32(count))} },
		func(body []byte, count int) error {
			n, err := countIDs(body)
			if err == nil && n != count {
				err = fmt.Errorf("%d IDs for a count of %d", n, count)
			}
			return err
		})
}

// newSeqConn is a rawConn calling NextSeq for uid, which checks that each
// answer is above the one before.
func newSeqConn(b *testing.B, addr string, uid uint64) *rawConn {
	var last uint64
	return newRawConn(b, addr, migv1.SeqServicePathPrefix+"NextSeq",
		func(int) proto.Message { return &migv1.NextSeqRequest{Uid: uid} },
		func(body []byte, _ int) error {
			v, err := firstVarint(body, seqField)
			if err == nil && v <= last {
				err = fmt.Errorf("uid %d: seq %d after %d", uid, v, last)
			}
			last = v
			return err
		})
}

func (r *rawConn) call(_ context.Context, count int) error {
	req, ok := r.reqs[count]
	if !ok {
		body, err := proto.Marshal(r.encode(count))
		if err != nil {
			return err
		}
		req = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\n"+
			"Content-Type: application/protobuf\r\nContent-Length: %d\r\n\r\n%s", r.path, r.conn.RemoteAddr(), len(body), body)
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
			n, ok := parseDigits(bytes.TrimSpace(v))
			if !ok {
				return fmt.Errorf("header %q", line)
			}
			length = int(n)
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
	return r.check(r.body, count)
}

// parseDigits parses a non-negative decimal number without allocating.
func parseDigits(b []byte) (int64, bool) {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' || v > (math.MaxInt64-9)/10 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, len(b) > 0
}

// seqField is NextSeqResponse's seq.
var seqField = (&migv1.NextSeqResponse{}).ProtoReflect().Descriptor().Fields().ByName("seq").Number()

// firstVarint returns the varint field num of an encoded message, which
// must be there.
func firstVarint(b []byte, num protowire.Number) (uint64, error) {
	for len(b) > 0 {
		n, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return 0, protowire.ParseError(k)
		}
		b = b[k:]
		if n == num && typ == protowire.VarintType {
			v, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return 0, protowire.ParseError(k)
			}
			return v, nil
		}
		if k = protowire.ConsumeFieldValue(n, typ, b); k < 0 {
			return 0, protowire.ParseError(k)
		}
		b = b[k:]
	}
	return 0, fmt.Errorf("no field %d", num)
}

// idsField is NextIDsResponse's ids.
var idsField = (&migv1.NextIDsResponse{}).ProtoReflect().Descriptor().Fields().ByName("ids").Number()

// countIDs counts the IDs in an encoded NextIDsResponse, packed or not,
// checking the encoding as it goes, without allocating: proto.Unmarshal
// would allocate the slice and the datacenter's string, and at a hundred
// thousand answers a second the client's collector then runs often
// enough to show in the latencies it measures.
func countIDs(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return 0, protowire.ParseError(k)
		}
		b = b[k:]
		switch {
		case num == idsField && typ == protowire.BytesType:
			packed, k := protowire.ConsumeBytes(b)
			if k < 0 {
				return 0, protowire.ParseError(k)
			}
			for len(packed) > 0 {
				_, j := protowire.ConsumeVarint(packed)
				if j < 0 {
					return 0, protowire.ParseError(j)
				}
				packed, n = packed[j:], n+1
			}
			b = b[k:]
		case num == idsField && typ == protowire.VarintType:
			_, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return 0, protowire.ParseError(k)
			}
			b, n = b[k:], n+1
		default:
			k := protowire.ConsumeFieldValue(num, typ, b)
			if k < 0 {
				return 0, protowire.ParseError(k)
			}
			b = b[k:]
		}
	}
	return n, nil
}

// closedLoop makes b.N NextIDs calls of count IDs from benchClients
// goroutines, each sending its next request when the last is answered. It
// reports requests/s, IDs/s and latency percentiles, and returns
// requests/s.
func closedLoop(b *testing.B, newCaller func(*testing.B) caller, count int) float64 {
	src := clock.NewReal()
	var next atomic.Int64
	lat := collect(b, newCaller, func(c caller, lat []time.Duration) {
		for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
			start := src.Mono()
			check(b, c.call(b.Context(), count))
			lat[i] = src.Mono() - start
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
	type ticket struct {
		i             int
		due, released time.Duration
	}
	tickets := make(chan ticket, b.N)
	var pacer sync.WaitGroup
	defer pacer.Wait()
	lat := collect(b, newCaller, func(c caller, lat []time.Duration) {
		for t := range tickets {
			start := max(t.due, t.released)
			check(b, c.call(b.Context(), 1))
			lat[t.i] = src.Mono() - start
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
					tickets <- ticket{i, due, now}
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
	collect(b, newCaller, func(c caller, _ []time.Duration) {
		for src.Mono()-start < 2*time.Second {
			check(b, c.call(b.Context(), 1))
			n.Add(1)
		}
	})
	return float64(n.Load()) / (src.Mono() - start).Seconds()
}

// collect makes benchClients callers, then runs loop in a goroutine for
// each with the timer running, and returns the latencies recorded, sorted.
// loop records request i's latency in lat[i], of b.N made before the
// timer starts, so that recording allocates nothing. before, if given,
// runs once the callers are ready, just before the timer starts.
func collect(b *testing.B, newCaller func(*testing.B) caller, loop func(c caller, lat []time.Duration), before ...func()) []time.Duration {
	callers := make([]caller, benchClients)
	for i := range callers {
		callers[i] = newCaller(b)
	}
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	for _, f := range before {
		f()
	}
	b.ResetTimer()
	for _, c := range callers {
		wg.Go(func() { loop(c, lat) })
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	return lat
}

func check(b *testing.B, err error) {
	if err != nil {
		b.Error(err)
	}
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

// BenchmarkHostPauses measures the floor under every tail latency this
// machine can show: how often a thread that never blocks is kept off its
// core all the same, by the hypervisor or the kernel's own work. One
// thread per core (GOMAXPROCS of them) reads the clock in a loop for b.N
// milliseconds, and the benchmark reports the gaps between two readings
// longer than 1 ms and 3 ms, per second of one core, and the longest.
//
// Such a pause stops whatever runs on that core, client or server. At 80%
// load, the requests queued behind a pause of d take d/(1-0.8) = 5d to
// drain, so a machine that pauses a busy core for 3 ms or more about once
// every few seconds cannot show a p99.9 under 3 ms there, whatever the
// server does: docs/benchmarks.md has the arithmetic and the figures.
// Run it alone: anything else running shows as pauses.
func BenchmarkHostPauses(b *testing.B) {
	src := clock.NewReal()
	type pauses struct {
		over1, over3 int
		worst        time.Duration
	}
	cores := runtime.GOMAXPROCS(0)
	seen := make([]pauses, cores)
	var wg sync.WaitGroup
	b.ResetTimer()
	for k := range seen {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			p := &seen[k]
			last := src.Mono()
			for end := last + time.Duration(b.N)*time.Millisecond; last < end; {
				now := src.Mono()
				if gap := now - last; gap > time.Millisecond {
					p.over1++
					if gap > 3*time.Millisecond {
						p.over3++
					}
					p.worst = max(p.worst, gap)
				}
				last = now
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	var all pauses
	for _, p := range seen {
		all.over1 += p.over1
		all.over3 += p.over3
		all.worst = max(all.worst, p.worst)
	}
	coreSeconds := float64(cores) * float64(b.N) / 1000
	b.ReportMetric(float64(all.over1)/coreSeconds, "pauses>1ms/core-s")
	b.ReportMetric(float64(all.over3)/coreSeconds, "pauses>3ms/core-s")
	b.ReportMetric(float64(all.worst)/float64(time.Millisecond), "longest-ms")
}

// TestCountIDs checks the benchmark client's ID counting against proto's
// encoding, packed and not.
func TestCountIDs(t *testing.T) {
	for _, ids := range [][]uint64{nil, {1}, {1, 2, 3}, {1 << 62, 5, 1 << 40}} {
		b, err := proto.Marshal(&migv1.NextIDsResponse{Ids: ids, WorkerId: 3, Datacenter: "tokyo"})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := countIDs(b); err != nil || n != len(ids) {
			t.Errorf("countIDs of %d IDs = %d, %v", len(ids), n, err)
		}
		// The same IDs unpacked, which a decoder must accept too.
		var unpacked []byte
		for _, id := range ids {
			unpacked = protowire.AppendTag(unpacked, idsField, protowire.VarintType)
			unpacked = protowire.AppendVarint(unpacked, id)
		}
		if n, err := countIDs(unpacked); err != nil || n != len(ids) {
			t.Errorf("countIDs of %d unpacked IDs = %d, %v", len(ids), n, err)
		}
	}
	for _, bad := range [][]byte{{0x0a}, {0x0a, 0x05, 0x01}, {0x08}, {0x0a, 0x01, 0x80}} {
		if n, err := countIDs(bad); err == nil {
			t.Errorf("countIDs(%x) = %d, no error", bad, n)
		}
	}
}
