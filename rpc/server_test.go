package rpc_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/workerid"
)

const (
	nextIDsPath = migv1.IDServicePathPrefix + "NextIDs"
	decodePath  = migv1.IDServicePathPrefix + "Decode"
)

func TestNextIDsAndDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []migclient.Option
	}{
		{"protobuf", nil},
		{"json", []migclient.Option{migclient.WithJSON()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := serve(t, newIssuer(t))
			c := newClient(t, []string{ts.URL}, tc.opts...)
			ctx := t.Context()

			ids, origin, err := c.NextIDs(ctx, 5)
			if err != nil {
				t.Fatal(err)
			}
			want := migclient.Origin{Endpoint: ts.URL, WorkerID: testWorker, Datacenter: testDC}
			if origin != want {
				t.Fatalf("origin %+v, want %+v", origin, want)
			}
			first, err := testLayout.Compose(tick0, testWorker, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				if id != first+mig.ID(i) {
					t.Fatalf("ids %v, want 5 from %d", ids, first)
				}
			}

			d, err := c.Decode(ctx, ids[4])
			if err != nil {
				t.Fatal(err)
			}
			wantD := migclient.Decoded{ID: ids[4], Time: testLayout.TickTime(tick0), Parts: mig.Parts{Tick: tick0, Worker: testWorker, Seq: 4}}
			if !d.Time.Equal(wantD.Time) || d.ID != wantD.ID || d.Parts != wantD.Parts {
				t.Fatalf("decoded %+v, want %+v", d, wantD)
			}
		})
	}
}

func TestJSONCarriesIntegersAsStrings(t *testing.T) {
	_, ts := serve(t, newIssuer(t))

	status, body := post(t, ts.URL+nextIDsPath, "application/json", []byte(`{"count":3}`))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var ans struct {
		IDs        []any  `json:"ids"`
		WorkerID   any    `json:"worker_id"`
		Datacenter string `json:"datacenter"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatal(err)
	}
	if len(ans.IDs) != 3 {
		t.Fatalf("%d IDs in %s", len(ans.IDs), body)
	}
	for _, v := range ans.IDs {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("ID %v is a %T, not a string, in %s", v, v, body)
		}
		if _, err := mig.ParseID(s); err != nil {
			t.Fatal(err)
		}
	}
	if ans.WorkerID != float64(testWorker) || ans.Datacenter != testDC {
		t.Fatalf("answer %s", body)
	}

	id := ans.IDs[0].(string)
	status, body = post(t, ts.URL+decodePath, "application/json", []byte(`{"id":"`+id+`"}`))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var dec map[string]any
	if err := json.Unmarshal(body, &dec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id":     id,
		"time":   "2025-01-02T00:00:00.000Z",
		"tick":   fmt.Sprint(tick0),
		"worker": float64(testWorker),
		"seq":    float64(0),
	}
	for k, v := range want {
		if dec[k] != v {
			t.Errorf("%s: %v (%T), want %v (%T), in %s", k, dec[k], dec[k], v, v, body)
		}
	}
}

func TestCountAbsentMeansOne(t *testing.T) {
	_, ts := serve(t, newIssuer(t))
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		decode            func([]byte, proto.Message) error
	}{
		{"json", "application/json", []byte(`{}`), protojson.Unmarshal},
		{"json null", "application/json", []byte(`{"count":null}`), protojson.Unmarshal},
		{"protobuf", "application/protobuf", nil, proto.Unmarshal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, ts.URL+nextIDsPath, tc.contentType, tc.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var resp migv1.NextIDsResponse
			if err := tc.decode(body, &resp); err != nil {
				t.Fatal(err)
			}
			if len(resp.Ids) != 1 {
				t.Fatalf("%d IDs, want 1", len(resp.Ids))
			}
		})
	}
}

func TestBadCountConsumesNothing(t *testing.T) {
	issuer := newIssuer(t)
	_, ts := serve(t, issuer)
	c := newClient(t, []string{ts.URL})
	ctx := t.Context()

	next := func() mig.ID {
		t.Helper()
		ids, _, err := c.NextIDs(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		return ids[0]
	}
	for _, n := range []int32{0, -1, rpc.MaxCount + 1, math.MaxInt32, math.MinInt32} {
		for _, enc := range []string{"protobuf", "json"} {
			t.Run(fmt.Sprintf("%d/%s", n, enc), func(t *testing.T) {
				before := next()
				calls := issuer.calls.Load()

				var status int
				var body []byte
				if enc == "json" {
					status, body = post(t, ts.URL+nextIDsPath, "application/json", fmt.Appendf(nil, `{"count":%d}`, n))
				} else {
					req, err := proto.Marshal(&migv1.NextIDsRequest{Count: proto.Int32(n)})
					if err != nil {
						t.Fatal(err)
					}
					status, body = post(t, ts.URL+nextIDsPath, "application/protobuf", req)
				}
				e := parseTwirpError(t, status, body)
				want := fmt.Sprintf("count %d is not in 1..%d", n, rpc.MaxCount)
				if e.Code != string(twirp.InvalidArgument) || e.Msg != want || e.Meta["argument"] != "count" {
					t.Fatalf("error %+v, want invalid_argument %q with argument=count", e, want)
				}
				if got := issuer.calls.Load(); got != calls {
					t.Fatalf("the issuer was called for a bad count")
				}
				if after := next(); after != before+1 {
					t.Fatalf("next ID %d after a refused count, want %d: the refusal consumed IDs", after, before+1)
				}
			})
		}
	}
}

func TestClientRefusesBadCountLocally(t *testing.T) {
	issuer := newIssuer(t)
	_, ts := serve(t, issuer)
	c := newClient(t, []string{ts.URL})
	for _, n := range []int{0, -1, rpc.MaxCount + 1, math.MaxInt32 + 1, math.MinInt64} {
		_, _, err := c.NextIDs(t.Context(), n)
		twerr := twirpErr(t, err)
		if twerr.Code() != twirp.InvalidArgument || !strings.Contains(twerr.Msg(), fmt.Sprintf("count %d is not in 1..%d", n, rpc.MaxCount)) {
			t.Fatalf("count %d: %v", n, err)
		}
	}
	if issuer.calls.Load() != 0 {
		t.Fatal("a bad count reached the issuer")
	}
	ids, _, err := c.NextIDs(t.Context(), rpc.MaxCount)
	if err != nil || len(ids) != rpc.MaxCount {
		t.Fatalf("%d IDs, %v", len(ids), err)
	}
}

func TestIssuerErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		code      twirp.ErrorCode
		retryable bool
		msg       string
	}{
		{"not held", workerid.ErrNotHeld, twirp.Unavailable, true, "no worker ID held"},
		{"fenced", fmt.Errorf("%w: %w", workerid.ErrNotHeld, mig.ErrFenced), twirp.Unavailable, true, "no worker ID held"},
		{"ceiling", mig.ErrCeiling, twirp.Unavailable, true, "watermark"},
		{"exhausted", mig.ErrExhausted, twirp.Unavailable, true, "exhausted"},
		{"clock range", fmt.Errorf("%w: clock reads 3s before the epoch", mig.ErrClockRange), twirp.Unavailable, true, "before the epoch"},
		{"clock unsafe", fmt.Errorf("%w: NTP offset 2s", workerid.ErrClockUnsafe), twirp.Unavailable, true, "NTP offset 2s"},
		{"batch size", fmt.Errorf("%w: 0 not in 1..262144", mig.ErrBatchSize), twirp.InvalidArgument, false, "0 not in"},
		{"other", errors.New("disk on fire"), twirp.Internal, false, "disk on fire"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issuer := newIssuer(t)
			issuer.setFail(tc.err)
			_, ts := serve(t, issuer)

			status, body := post(t, ts.URL+nextIDsPath, "application/json", []byte(`{"count":2}`))
			e := parseTwirpError(t, status, body)
			if e.Code != string(tc.code) || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("error %+v, want %s containing %q", e, tc.code, tc.msg)
			}
			if got := e.Meta[migv1.MetaRetryable] == "true"; got != tc.retryable {
				t.Fatalf("meta %v: retryable %v, want %v", e.Meta, got, tc.retryable)
			}

			// The Go client sees the same code (wrapped in its own
			// unavailable when it ran out of endpoints).
			_, _, err := newClient(t, []string{ts.URL}).NextIDs(t.Context(), 2)
			twerr := twirpErr(t, err)
			if twerr.Code() != tc.code || (twerr.Meta(migv1.MetaRetryable) == "true") != tc.retryable || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("client error %v (meta %v), want %s containing %q", err, twerr.MetaMap(), tc.code, tc.msg)
			}
		})
	}
}

func TestDecodeSignBit(t *testing.T) {
	_, ts := serve(t, newIssuer(t))
	const bad = 1 << 63

	status, body := post(t, ts.URL+decodePath, "application/json", []byte(`{"id":"9223372036854775808"}`))
	e := parseTwirpError(t, status, body)
	if e.Code != string(twirp.InvalidArgument) || !strings.Contains(e.Msg, "id 9223372036854775808 has the sign bit set") || e.Meta["argument"] != "id" {
		t.Fatalf("error %+v", e)
	}

	_, err := newClient(t, []string{ts.URL}).Decode(t.Context(), bad)
	if twerr := twirpErr(t, err); twerr.Code() != twirp.InvalidArgument {
		t.Fatalf("client error %v", err)
	}
}

// chunked hides a reader's length from http.NewRequest, so the body is
// sent without a Content-Length.
type chunked struct{ io.Reader }

func TestBadRequestsGetTwirpErrors(t *testing.T) {
	issuer := newIssuer(t)
	_, ts := serve(t, issuer, rpc.WithMaxBodyBytes(1024))
	// Leading space, so that a JSON decoder cannot finish before the limit.
	big := append(bytes.Repeat([]byte(" "), 2000), `{"count":1}`...)

	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		body        io.Reader
		code        twirp.ErrorCode
		msg         string
	}{
		{"oversized json", "POST", nextIDsPath, "application/json", bytes.NewReader(big), twirp.Malformed, "request body of 2011 bytes exceeds the limit of 1024 bytes"},
		{"oversized protobuf", "POST", decodePath, "application/protobuf", bytes.NewReader(big), twirp.Malformed, "exceeds the limit"},
		{"oversized chunked json", "POST", nextIDsPath, "application/json", chunked{bytes.NewReader(big)}, twirp.Malformed, ""},
		{"oversized chunked protobuf", "POST", nextIDsPath, "application/protobuf", chunked{bytes.NewReader(big)}, twirp.Malformed, ""},
		{"wrong content type", "POST", nextIDsPath, "text/plain", strings.NewReader(`{"count":1}`), twirp.BadRoute, "Content-Type"},
		{"no content type", "POST", nextIDsPath, "", strings.NewReader(`{"count":1}`), twirp.BadRoute, "Content-Type"},
		{"malformed json", "POST", nextIDsPath, "application/json", strings.NewReader(`{"count":`), twirp.Malformed, ""},
		{"json of the wrong type", "POST", nextIDsPath, "application/json", strings.NewReader(`{"count":"many"}`), twirp.InvalidArgument, `count: "many" is not an integer`},
		{"json array", "POST", decodePath, "application/json", strings.NewReader(`[1,2]`), twirp.Malformed, ""},
		{"malformed protobuf", "POST", nextIDsPath, "application/protobuf", bytes.NewReader([]byte{0xff, 0xff, 0xff}), twirp.Malformed, ""},
		{"truncated protobuf", "POST", decodePath, "application/protobuf", bytes.NewReader([]byte{0x08, 0x80}), twirp.Malformed, ""},
		{"GET", "GET", nextIDsPath, "application/json", nil, twirp.BadRoute, "only POST"},
		{"unknown method", "POST", migv1.IDServicePathPrefix + "Nope", "application/json", strings.NewReader(`{}`), twirp.BadRoute, "no handler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			status, body := do(t, req)
			e := parseTwirpError(t, status, body)
			if e.Code != string(tc.code) || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("error %+v, want %s containing %q", e, tc.code, tc.msg)
			}
		})
	}
	if n := issuer.calls.Load(); n != 0 {
		t.Fatalf("bad requests reached the issuer %d times", n)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var held atomic.Bool
	_, ts := serve(t, newIssuer(t),
		rpc.WithReadiness("worker ID held", func() error {
			if !held.Load() {
				return workerid.ErrNotHeld
			}
			return nil
		}),
		rpc.WithReadiness("clock safe", func() error { return nil }),
	)
	get := func(path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		status, body := do(t, req)
		return status, string(body)
	}

	if status, body := get("/healthz"); status != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	status, body := get("/readyz")
	if status != http.StatusServiceUnavailable ||
		!strings.Contains(body, "worker ID held: failed: workerid: no worker ID held") ||
		!strings.Contains(body, "clock safe: ok") {
		t.Fatalf("/readyz while not held: %d %q", status, body)
	}
	held.Store(true)
	if status, body := get("/readyz"); status != http.StatusOK || !strings.HasPrefix(body, "ok\n") {
		t.Fatalf("/readyz while held: %d %q", status, body)
	}
	held.Store(false)
	if status, _ := get("/readyz"); status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after losing the ID: %d", status)
	}
	// Liveness does not depend on readiness.
	if status, _ := get("/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz: %d", status)
	}
}

func TestMetrics(t *testing.T) {
	s, ts := serve(t, newIssuer(t), rpc.WithMaxBodyBytes(100))
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mig_worker_id_held", Help: "test"}, func() float64 { return 1 })
	if err := s.Registry().Register(g); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, []string{ts.URL})
	for range 3 {
		if _, _, err := c.NextIDs(t.Context(), 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Decode(t.Context(), 1<<63); err == nil {
		t.Fatal("decoded the sign bit")
	}
	post(t, ts.URL+nextIDsPath, "application/json", bytes.Repeat([]byte(" "), 200))
	post(t, ts.URL+"/twirp/mig.v1.IDService/Nope", "application/json", nil)

	req, err := http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	status, body := do(t, req)
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`mig_rpc_requests_total{code="ok",method="NextIDs",service="IDService"} 3`,
		`mig_rpc_requests_total{code="invalid_argument",method="Decode",service="IDService"} 1`,
		`mig_rpc_requests_total{code="malformed",method="NextIDs",service="IDService"} 1`,
		`mig_rpc_requests_total{code="bad_route",method="unknown",service="IDService"} 1`,
		`mig_rpc_request_duration_seconds_count{method="NextIDs",service="IDService"} 4`,
		`mig_ids_issued_total 30`,
		`mig_worker_id_held 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestNewServerErrors(t *testing.T) {
	ok := func() error { return nil }
	for _, tc := range []struct {
		name   string
		issuer rpc.IDIssuer
		opts   []rpc.ServerOption
	}{
		{"nil issuer", nil, nil},
		{"zero body limit", newIssuer(t), []rpc.ServerOption{rpc.WithMaxBodyBytes(0)}},
		{"nil clock", newIssuer(t), []rpc.ServerOption{rpc.WithClock(nil)}},
		{"nil logger", newIssuer(t), []rpc.ServerOption{rpc.WithLogger(nil)}},
		{"unnamed check", newIssuer(t), []rpc.ServerOption{rpc.WithReadiness("", ok)}},
		{"nil check", newIssuer(t), []rpc.ServerOption{rpc.WithReadiness("x", nil)}},
		{"check twice", newIssuer(t), []rpc.ServerOption{rpc.WithReadiness("x", ok), rpc.WithReadiness("x", ok)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := rpc.NewServer(tc.issuer, tc.opts...); !errors.Is(err, rpc.ErrConfig) {
				t.Fatalf("error %v, want ErrConfig", err)
			}
		})
	}
}

// Concurrent callers, through both encodings, get disjoint IDs, and each
// caller's IDs (all from one worker) strictly increase.
func TestNextIDsStrictlyIncreaseAcrossConcurrentClients(t *testing.T) {
	_, ts := serve(t, newIssuer(t))
	clients := []*migclient.Client{newClient(t, []string{ts.URL}), newClient(t, []string{ts.URL}, migclient.WithJSON())}
	const goroutines, calls = 16, 40
	ctx := t.Context()
	got := make([][]mig.ID, goroutines)
	errc := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			c := clients[g%len(clients)]
			for i := range calls {
				ids, _, err := c.NextIDs(ctx, 1+(g*calls+i)%50)
				if err != nil {
					errc <- err
					return
				}
				got[g] = append(got[g], ids...)
			}
			errc <- nil
		}()
	}
	for range goroutines {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[mig.ID]bool)
	for _, ids := range got {
		for i, id := range ids {
			if seen[id] {
				t.Fatalf("ID %d issued twice", id)
			}
			seen[id] = true
			// One caller's IDs from one worker strictly increase.
			if i > 0 && id <= ids[i-1] {
				t.Fatalf("ID %d after %d", id, ids[i-1])
			}
		}
	}
}
