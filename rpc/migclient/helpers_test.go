package migclient_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/internal/nettest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migclient"
)

// The client is tested against the real server (package rpc) on
// loopback, over issuers that are real generators: only which answers a
// server gives, and when, is the test's.

var testLayout = mig.DefaultLayout()

// t0 is one day after the default epoch.
var t0 = testLayout.Epoch().Add(24 * time.Hour)

// manualClock reads a clock.Manual's monotonic time as Unix nanoseconds
// from start: the ID clock stands still unless the test advances it.
type manualClock struct {
	*clock.Manual
	start int64
}

func (c manualClock) UnixNano() int64 { return c.start + int64(c.Mono()) }

// testIssuer is an rpc.IDIssuer backed by a real generator, in
// datacenter dc. While fail holds an error, NextN returns it instead of
// issuing.
type testIssuer struct {
	gen   *mig.Generator
	dc    string
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
func (i *testIssuer) Datacenter() string { return i.dc }

func (i *testIssuer) setFail(err error) {
	if err == nil {
		i.fail.Store(nil)
		return
	}
	i.fail.Store(&err)
}

// newIssuer returns an issuer of worker 7 in tokyo whose clock stands
// still at t0.
func newIssuer(t testing.TB) *testIssuer { return newIssuerIn(t, "tokyo", 7) }

// newIssuerIn returns an issuer of worker in dc whose clock stands still
// at t0.
func newIssuerIn(t testing.TB, dc string, worker uint32) *testIssuer {
	t.Helper()
	g, err := mig.New(mig.Config{Layout: testLayout, Worker: worker},
		manualClock{Manual: clock.NewManual(t0), start: t0.UnixNano()}, mig.NewMemCeiling(mig.MaxTick))
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{gen: g, dc: dc}
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
	return s, &testServer{URL: "http://" + ln.Addr().String(), Handler: s.Handler()}
}

// counted serves h and counts the requests it gets.
func counted(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

// deadEndpoint returns the address of a loopback port nobody listens on:
// connecting to it is refused.
func deadEndpoint(t *testing.T) string { return nettest.RefusedAddr(t) }

func newClient(t testing.TB, endpoints []string, opts ...migclient.Option) *migclient.Client {
	t.Helper()
	c, err := migclient.New(endpoints, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
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
