package rpc_test

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migv1"
)

// fastCaller calls a server's fast route with protobuf bodies, reusing
// what a connection would reuse.
type fastCaller struct {
	t     testing.TB
	path  string
	fast  h1.FastHandler
	w     h1.ResponseWriter
	req   h1.FastRequest
	local any
}

func newFastCaller(t testing.TB, s *rpc.Server, path string) *fastCaller {
	c := &fastCaller{t: t, path: path, fast: s.FastHandlers()[path]}
	c.req = h1.FastRequest{Context: t.Context(), ContentType: []byte("application/protobuf"), Local: &c.local}
	return c
}

// call calls the route with body and fails unless it answered 200; the
// answer is in c.w.
func (c *fastCaller) call(body []byte) {
	c.w.Reset()
	c.req.Body = body
	if !c.fast(&c.w, &c.req) || c.w.Status() != http.StatusOK {
		c.t.Fatalf("%s %x: declined or failed: %d %q", c.path, body, c.w.Status(), c.w.Body())
	}
}

// TestFastRoutesAllocateNothing: once warm, the fast routes of the hot
// methods allocate nothing per request, so that a loaded server leaves
// the collector idle (see serveFast).
func TestFastRoutesAllocateNothing(t *testing.T) {
	ids, err := rpc.NewServer(newRealIssuer(t))
	if err != nil {
		t.Fatal(err)
	}
	// The ID routes first, before the sequence node and its embedded
	// etcd run: AllocsPerRun counts the whole process's allocations, and
	// theirs (raft ticks, confirmations, watches) showed now and then as
	// one per request of the slowest route (NextIDs/count=100 under
	// -race).
	for _, tt := range []fastAllocCase{
		{"NextIDs/count=1", migv1.IDServicePathPrefix + "NextIDs", fixed(&migv1.NextIDsRequest{Count: proto.Int32(1)})},
		{"NextIDs/count=100", migv1.IDServicePathPrefix + "NextIDs", fixed(&migv1.NextIDsRequest{Count: proto.Int32(100)})},
		{"NextIDs/no-count", migv1.IDServicePathPrefix + "NextIDs", fixed(&migv1.NextIDsRequest{})},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, ids) })
	}
	// Every confirmation of the node is a write to the embedded etcd, in
	// this process, whose allocations AllocsPerRun counts: a 4 s delay
	// spaces them a second apart, so that the least of three runs holds
	// none (a 500 ms delay put one in each run of a loaded CI host).
	_, _, seq := serveSeqDelayed(t, 4*time.Second)
	const uids = 5000 // the calls spread over them stay within one step
	for _, tt := range []fastAllocCase{
		{"NextSeq", migv1.SeqServicePathPrefix + "NextSeq", perUID(uids, func(u uint64) proto.Message { return &migv1.NextSeqRequest{Uid: u} })},
		{"CurSeq", migv1.SeqServicePathPrefix + "CurSeq", perUID(uids, func(u uint64) proto.Message { return &migv1.CurSeqRequest{Uid: u} })},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, seq) })
	}
}

// fastAllocCase is a fast route and the bodies to call it with.
type fastAllocCase struct {
	name string
	path string
	body func(i int) []byte
}

// check fails unless s's route, once warm, allocates nothing per request.
func (tt fastAllocCase) check(t *testing.T, s *rpc.Server) {
	c := newFastCaller(t, s, tt.path)
	for i := range 10 { // warm: the pool, the buffers, the uids' section
		c.call(tt.body(i))
	}
	i := 0
	// The sequence node's goroutines allocate meanwhile; they only add:
	// the least of three runs is the route's own, and an allocation per
	// request shows in every run.
	allocs := math.Inf(1)
	for range 3 {
		allocs = min(allocs, testing.AllocsPerRun(1000, func() {
			c.call(tt.body(i))
			i++
		}))
	}
	if allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}

// fixed returns a body function that always gives m, encoded once.
func fixed(m proto.Message) func(int) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return func(int) []byte { return b }
}

// perUID returns a body function that gives mk's request for uid
// 1+i%n, encoded in advance.
func perUID(n int, mk func(uint64) proto.Message) func(int) []byte {
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fixed(mk(uint64(i + 1)))(0)
	}
	return func(i int) []byte { return bodies[i%n] }
}

// TestFastRouteReusesNothingStale: the fast route reuses its messages on
// a connection, and an answer must not carry anything of the request
// before it.
func TestFastRouteReusesNothingStale(t *testing.T) {
	s, err := rpc.NewServer(newRealIssuer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := newFastCaller(t, s, migv1.IDServicePathPrefix+"NextIDs")
	for _, tt := range []struct {
		req  *migv1.NextIDsRequest
		want int
	}{
		{&migv1.NextIDsRequest{Count: proto.Int32(1000)}, 1000},
		{&migv1.NextIDsRequest{Count: proto.Int32(1)}, 1},
		{&migv1.NextIDsRequest{Count: proto.Int32(7)}, 7},
		{&migv1.NextIDsRequest{}, 1}, // count absent after a count: 1, not 7
		{&migv1.NextIDsRequest{Count: proto.Int32(3)}, 3},
		{&migv1.NextIDsRequest{Count: proto.Int32(rpc.MaxCount)}, rpc.MaxCount},
		{&migv1.NextIDsRequest{Count: proto.Int32(2)}, 2},
	} {
		c.call(fixed(tt.req)(0))
		var resp migv1.NextIDsResponse
		if err := proto.Unmarshal(c.w.Body(), &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Ids) != tt.want || resp.Datacenter != testDC {
			t.Fatalf("count %v: %d IDs from %q, want %d from %s", tt.req.Count, len(resp.Ids), resp.Datacenter, tt.want, testDC)
		}
	}
}

// FuzzDecodeNextIDs: the fast route's NextIDs decoder agrees with
// proto.Unmarshal on every body, into a fresh request and into one reused
// from the body before, as a connection reuses it.
func FuzzDecodeNextIDs(f *testing.F) {
	for _, b := range [][]byte{
		nil,
		{0x08, 0x01},
		{0x08, 0x00},
		{0x08, 0xff, 0xff, 0xff, 0xff, 0x0f}, // -1 as a 5-byte varint
		{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // -1 as proto writes it
		{0x08, 0x80, 0x80, 0x80, 0x80, 0x10},                               // above 2^32: truncated
		{0x08, 0x01, 0x08, 0x02},                                           // the last one wins
		{0x08},
		{0x08, 0x80},
		{0x0d, 0x01, 0x00, 0x00, 0x00}, // field 1 as fixed32
		{0x10, 0x01},                   // an unknown field
		{0x08, 0x03, 0x12, 0x01, 0x61},
		{0x00},
	} {
		f.Add(b)
	}
	reused := new(migv1.NextIDsRequest)
	f.Fuzz(func(t *testing.T, body []byte) {
		want := new(migv1.NextIDsRequest)
		werr := proto.Unmarshal(body, want)
		for _, got := range []*migv1.NextIDsRequest{new(migv1.NextIDsRequest), reused} {
			gerr := rpc.DecodeNextIDs(body, got)
			if (gerr == nil) != (werr == nil) {
				t.Fatalf("%x: error %v, proto.Unmarshal's %v", body, gerr, werr)
			}
			if werr == nil && !proto.Equal(got, want) {
				t.Fatalf("%x: decoded %v, proto.Unmarshal %v", body, got, want)
			}
		}
		if werr != nil {
			reused = new(migv1.NextIDsRequest) // an error leaves a message undefined
		}
	})
}

// TestFastSharesLimitAndAccounting: the fast route and Handler refuse
// the same oversized body with the same answer, and both paths count
// their requests in the same series.
func TestFastSharesLimitAndAccounting(t *testing.T) {
	s, err := rpc.NewServer(newRealIssuer(t), rpc.WithMaxBodyBytes(100))
	if err != nil {
		t.Fatal(err)
	}
	path := migv1.IDServicePathPrefix + "NextIDs"
	// count 1 behind 200 bytes of an unknown field: decodable, too large.
	big := append(fixed(&migv1.NextIDsRequest{Count: proto.Int32(1)})(0), protowire.AppendBytes([]byte{0x7a}, make([]byte, 200))...)
	small := fixed(&migv1.NextIDsRequest{Count: proto.Int32(1)})(0)

	var w h1.ResponseWriter
	if !s.FastHandlers()[path](&w, &h1.FastRequest{Context: t.Context(), ContentType: []byte("application/protobuf"), Body: big}) {
		t.Fatal("the fast route declined an oversized body: it must refuse it itself")
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(big))
	req.Header.Set("Content-Type", "application/protobuf")
	s.Handler().ServeHTTP(rec, req)
	if w.Status() != rec.Code || !bytes.Equal(w.Body(), rec.Body.Bytes()) || rec.Code != http.StatusBadRequest {
		t.Fatalf("fast route answered %d %q, Handler %d %q", w.Status(), w.Body(), rec.Code, rec.Body.Bytes())
	}
	if !bytes.Contains(w.Body(), []byte("exceeds the limit of 100 bytes")) {
		t.Errorf("refusal %q does not name the limit", w.Body())
	}

	newFastCaller(t, s, path).call(small)
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, path, bytes.NewReader(small))
	req.Header.Set("Content-Type", "application/protobuf")
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("Handler answered %d %q", rec.Code, rec.Body.Bytes())
	}

	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`mig_rpc_requests_total{code="malformed",method="NextIDs",service="IDService"} 2`,
		`mig_rpc_requests_total{code="ok",method="NextIDs",service="IDService"} 2`,
		`mig_rpc_request_duration_seconds_count{method="NextIDs",service="IDService"} 4`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
