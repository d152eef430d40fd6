package rpc_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migclient"
)

var testLayout = mig.DefaultLayout()

// t0 is one day after the default epoch: tick 8,640,000.
var t0 = testLayout.Epoch().Add(24 * time.Hour)

const (
	tick0      = 8_640_000
	testWorker = 7
	testDC     = "tokyo"
)

// manualClock reads a clock.Manual's monotonic time as Unix nanoseconds
// from start: the ID clock stands still unless the test advances it, so
// consecutive IDs differ by exactly one.
type manualClock struct {
	*clock.Manual
	start int64
}

func (c manualClock) UnixNano() int64 { return c.start + int64(c.Mono()) }

// testIssuer is an IDIssuer backed by a real generator. While fail holds
// an error, NextN returns it instead of issuing.
type testIssuer struct {
	gen   *mig.Generator
	fail  atomic.Pointer[error]
	calls atomic.Int64
}

var _ rpc.IDIssuer = (*testIssuer)(nil)

func (i *testIssuer) NextN(n int) (mig.Batch, error) {
	i.calls.Add(1)
	if err := i.fail.Load(); err != nil {
		return mig.Batch{}, *err
	}
	return i.gen.NextN(n)
}

func (i *testIssuer) Layout() mig.Layout { return testLayout }
func (i *testIssuer) Datacenter() string { return testDC }

func (i *testIssuer) setFail(err error) {
	if err == nil {
		i.fail.Store(nil)
		return
	}
	i.fail.Store(&err)
}

// newIssuer returns an issuer whose clock stands still at t0.
func newIssuer(t testing.TB) *testIssuer {
	t.Helper()
	return newIssuerOn(t, manualClock{Manual: clock.NewManual(t0), start: t0.UnixNano()})
}

// newRealIssuer returns an issuer on a real-time ID clock, for runs that
// issue more than the generator may borrow from a clock that stands still.
func newRealIssuer(t testing.TB) *testIssuer {
	t.Helper()
	c, err := clock.NewSlewing(clock.NewReal(), clock.SlewConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return newIssuerOn(t, c)
}

func newIssuerOn(t testing.TB, c mig.Clock) *testIssuer {
	t.Helper()
	g, err := mig.New(mig.Config{Layout: testLayout, Worker: testWorker}, c, mig.NewMemCeiling(mig.MaxTick))
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{gen: g}
}

// testServer is a Server's handlers served on loopback as mig serve
// serves them: by internal/h1, with the fast routes.
type testServer struct {
	URL     string       // http://127.0.0.1:port
	Handler http.Handler // the Server's Handler
}

// serve starts a server for issuer on a loopback listener until the test
// ends.
func serve(t testing.TB, issuer rpc.IDIssuer, opts ...rpc.ServerOption) (*rpc.Server, *testServer) {
	t.Helper()
	s, err := rpc.NewServer(issuer, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, serveHTTP(t, s)
}

func serveHTTP(t testing.TB, s *rpc.Server) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &h1.Server{Handler: s.Handler(), Fast: s.FastHandlers()}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		<-served
	})
	return &testServer{URL: "http://" + ln.Addr().String(), Handler: s.Handler()}
}

func newClient(t testing.TB, endpoints []string, opts ...migclient.Option) *migclient.Client {
	t.Helper()
	c, err := migclient.New(endpoints, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// twerrBody is a Twirp error as it travels.
type twerrBody struct {
	Code string            `json:"code"`
	Msg  string            `json:"msg"`
	Meta map[string]string `json:"meta"`
}

// post sends body to url with the content type and returns the status and
// the body of the answer.
func post(t testing.TB, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// parseTwirpError checks that an answer is a well-formed Twirp error whose
// HTTP status matches its code, and returns it.
func parseTwirpError(t testing.TB, status int, body []byte) twerrBody {
	t.Helper()
	var e twerrBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("status %d, body %q is not a Twirp error: %v", status, body, err)
	}
	code := twirp.ErrorCode(e.Code)
	if !twirp.IsValidErrorCode(code) {
		t.Fatalf("status %d, body %q: invalid code %q", status, body, e.Code)
	}
	if want := twirp.ServerHTTPStatusFromErrorCode(code); status != want {
		t.Fatalf("code %s came with status %d, want %d", code, status, want)
	}
	return e
}

// twirpErr returns err's Twirp error, failing the test if it has none.
func twirpErr(t testing.TB, err error) twirp.Error {
	t.Helper()
	var twerr twirp.Error
	if !errors.As(err, &twerr) {
		t.Fatalf("error %v (%T) is not a Twirp error", err, err)
	}
	return twerr
}
