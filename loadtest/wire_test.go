package loadtest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/rpc/migv1"
)

var (
	idsField = (&migv1.NextIDsResponse{}).ProtoReflect().Descriptor().Fields().ByName("ids").Number()
	seqField = (&migv1.NextSeqResponse{}).ProtoReflect().Descriptor().Fields().ByName("seq").Number()
)

// TestCountIDs checks the ID counting against proto's encoding, packed
// and not.
func TestCountIDs(t *testing.T) {
	for _, ids := range [][]uint64{nil, {1}, {1, 2, 3}, {1 << 62, 5, 1 << 40}} {
		b, err := proto.Marshal(&migv1.NextIDsResponse{Ids: ids, WorkerId: 3, Datacenter: "tokyo"})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := loadtest.CountIDs(b); err != nil || n != len(ids) {
			t.Errorf("CountIDs of %d IDs = %d, %v", len(ids), n, err)
		}
		// The same IDs unpacked, which a decoder must accept too.
		var unpacked []byte
		for _, id := range ids {
			unpacked = protowire.AppendTag(unpacked, idsField, protowire.VarintType)
			unpacked = protowire.AppendVarint(unpacked, id)
		}
		if n, err := loadtest.CountIDs(unpacked); err != nil || n != len(ids) {
			t.Errorf("CountIDs of %d unpacked IDs = %d, %v", len(ids), n, err)
		}
	}
	for _, bad := range [][]byte{{0x0a}, {0x0a, 0x05, 0x01}, {0x08}, {0x0a, 0x01, 0x80}} {
		if n, err := loadtest.CountIDs(bad); err == nil {
			t.Errorf("loadtest.CountIDs(%x) = %d, no error", bad, n)
		}
	}
}

// TestWireConnAgainstMIG calls a MIG server (Twirp on net/http) with the
// wire clients.
func TestWireConnAgainstMIG(t *testing.T) {
	s := startIDServer(t, 3, nil)
	conn, err := net.Dial("tcp", s.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	c := loadtest.NewIDConn(conn)
	defer c.Close()
	for _, count := range []int{1, 1000, 1, 7} {
		if err := c.Call(t.Context(), count); err != nil {
			t.Fatalf("count %d: %v", count, err)
		}
	}
	if n := s.requests.Load(); n != 4 {
		t.Errorf("%d requests reached the server, want 4", n)
	}
}

// wireServer answers every HTTP/1.1 request on a loopback port with
// status and the body answer(i) for the ith request, allocating nothing
// itself once warm, so that the client's allocations can be counted.
func wireServer(t *testing.T, status string, answer func(dst []byte, i int) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				br := bufio.NewReader(c)
				var out, body []byte
				for i := 0; ; i++ {
					length := 0
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(": ")); ok && string(k) == "Content-Length" {
							length, _ = strconv.Atoi(string(v))
						}
					}
					if _, err := br.Discard(length); err != nil {
						return
					}
					body = answer(body[:0], i)
					out = append(out[:0], status...)
					out = append(out, "\r\nContent-Length: "...)
					out = strconv.AppendInt(out, int64(len(body)), 10)
					out = append(out, "\r\n\r\n"...)
					out = append(out, body...)
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A bound on every call: a broken test fails instead of hanging.
	conn.SetDeadline(clock.NewReal().Now().Wall.Add(time.Minute))
	return conn
}

// TestWireConnChecksAndAllocatesNothing: the wire clients judge every
// answer, and a call allocates nothing.
func TestWireConnChecksAndAllocatesNothing(t *testing.T) {
	twoIDs := func(dst []byte, _ int) []byte {
		dst = protowire.AppendTag(dst, idsField, protowire.BytesType)
		return protowire.AppendBytes(dst, []byte{1, 2})
	}
	seqs := func(dst []byte, i int) []byte {
		v := uint64(i + 1)
		if i == 3 {
			v = 2 // a rollback
		}
		dst = protowire.AppendTag(dst, seqField, protowire.VarintType)
		return protowire.AppendVarint(dst, v)
	}
	ids := loadtest.NewIDConn(dialT(t, wireServer(t, "HTTP/1.1 200 OK", twoIDs)))
	if err := ids.Call(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := ids.Call(t.Context(), 2); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("NextIDs call: %v allocations, want 0", allocs)
	}
	if err := ids.Call(t.Context(), 3); !errors.Is(err, loadtest.ErrWrongAnswer) {
		t.Errorf("2 IDs for a count of 3: %v, want loadtest.ErrWrongAnswer", err)
	}

	seq := loadtest.NewSeqConn(dialT(t, wireServer(t, "HTTP/1.1 200 OK", seqs)), 42)
	for i := range 3 {
		if err := seq.Call(t.Context(), 1); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if err := seq.Call(t.Context(), 1); !errors.Is(err, loadtest.ErrWrongAnswer) {
		t.Errorf("seq 2 after 3: %v, want loadtest.ErrWrongAnswer", err)
	}

	refused := loadtest.NewIDConn(dialT(t, wireServer(t, "HTTP/1.1 503 Service Unavailable", twoIDs)))
	if err := refused.Call(t.Context(), 2); !errors.Is(err, loadtest.ErrWrongAnswer) {
		t.Errorf("503: %v, want loadtest.ErrWrongAnswer", err)
	}
}

// TestRedisConn: INCR and INCRBY through the client `mig loadtest --redis`
// uses, each value checked to be above the last, without allocating.
func TestRedisConn(t *testing.T) {
	r := startFakeRedis(t)
	c, err := loadtest.DialRedis(t.Context(), clock.NewReal(), r.addr, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, count := range []int{1, 1000, 1} {
		if err := c.Call(t.Context(), count); err != nil {
			t.Fatalf("count %d: %v", count, err)
		}
	}
	if err := c.Call(t.Context(), -5); !errors.Is(err, loadtest.ErrWrongAnswer) {
		t.Errorf("a value below the last: %v, want loadtest.ErrWrongAnswer", err)
	}
}

// countingCaller succeeds, except every failEvery-th call, and counts its
// calls.
type countingCaller struct {
	mu        *sync.Mutex
	calls     *int
	failEvery int
	n         int
}

func (c *countingCaller) Call(_ context.Context, count int) error {
	c.mu.Lock()
	*c.calls++
	c.mu.Unlock()
	c.n++
	if c.failEvery > 0 && c.n%c.failEvery == 0 {
		return fmt.Errorf("call %d failed", c.n)
	}
	return nil
}

// TestBenchLoops: the closed loop makes exactly n calls, the open loop n
// at its rate, each returns n sorted latencies, and failures reach
// Failed.
func TestBenchLoops(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	var failed []error
	b := loadtest.Bench{Clock: clock.NewReal(), Failed: func(err error) {
		mu.Lock()
		failed = append(failed, err)
		mu.Unlock()
	}}
	for range 4 {
		b.Callers = append(b.Callers, &countingCaller{mu: &mu, calls: &calls, failEvery: 10})
	}
	var started, stopped int
	b.Start, b.Stop = func() { started++ }, func() { stopped++ }

	lat := b.Closed(context.Background(), 200, 1)
	if calls != 200 || len(lat) != 200 || !slices.IsSorted(lat) || started != 1 || stopped != 1 {
		t.Errorf("closed loop: %d calls, %d latencies (sorted %v), started %d, stopped %d", calls, len(lat), slices.IsSorted(lat), started, stopped)
	}
	if len(failed) == 0 {
		t.Error("no failure reported")
	}

	calls = 0
	src := clock.NewReal()
	begin := src.Mono()
	lat = b.Open(context.Background(), 100, 2000) // 50 ms
	if took := src.Mono() - begin; calls != 100 || len(lat) != 100 || took < 49*time.Millisecond {
		t.Errorf("open loop: %d calls, %d latencies in %v", calls, len(lat), took)
	}

	if rate := b.Max(context.Background(), 20*time.Millisecond); rate <= 0 {
		t.Errorf("Max: %v", rate)
	}
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
		if got := loadtest.Percentile(tt.sorted, tt.q); got != tt.want {
			t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.q, got, tt.want)
		}
	}
}

func TestMeasurePauses(t *testing.T) {
	p := loadtest.MeasurePauses(clock.NewReal(), 1, 20*time.Millisecond)
	if p.CoreSeconds != 0.02 || p.Over3ms > p.Over1ms || p.Over1ms > 0 && p.Longest <= time.Millisecond {
		t.Errorf("MeasurePauses = %+v", p)
	}
}
