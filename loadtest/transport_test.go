package loadtest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migclient"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serveCounting serves s with h1 as mig serve does, with the given idle
// timeout (0: h1's default), and returns its URL and its listener.
func serveCounting(t *testing.T, s *rpc.Server, idle time.Duration) (string, *countingListener) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: inner}
	hs := &h1.Server{Handler: s.Handler(), Fast: s.FastHandlers(), IdleTimeout: idle}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		<-served
	})
	return "http://" + inner.Addr().String(), ln
}

// TestTransportKeepsConnections: the client's default transport makes
// sequential calls on one connection.
func TestTransportKeepsConnections(t *testing.T) {
	s, err := rpc.NewServer(newIssuer(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	url, ln := serveCounting(t, s, 0)
	c := newTransportClient(t, []string{url})
	for range 200 {
		if _, _, err := c.NextIDs(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := ln.n.Load(); n != 1 {
		t.Errorf("%d connections for 200 calls one after another, want 1", n)
	}
}

// TestTransportNoticesClosedIdleConnections: a connection the server
// closed while it sat idle is not reused; the next call opens another
// and succeeds (a call made on the closed one would fail, its outcome
// unknown).
func TestTransportNoticesClosedIdleConnections(t *testing.T) {
	s, err := rpc.NewServer(newIssuer(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	url, ln := serveCounting(t, s, 50*time.Millisecond)
	c := newTransportClient(t, []string{url})
	for i := range 3 {
		if _, _, err := c.NextIDs(t.Context(), 1); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		<-clock.NewReal().After(300 * time.Millisecond) // the server closes it meanwhile
	}
	if n := ln.n.Load(); n != 3 {
		t.Errorf("%d connections, want 3: one per call, each closed by the server while idle", n)
	}
}

// TestTransportCancel: a call whose context ends while the server is
// silent returns the context's error promptly, and the transport goes on
// serving with another connection.
func TestTransportCancel(t *testing.T) {
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(hs.Close)
	t.Cleanup(func() { close(release) })
	cl := &http.Client{Transport: loadtest.NewTransport(clock.NewReal())}
	t.Cleanup(cl.CloseIdleConnections)

	get := func(ctx context.Context, path string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+path, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get(t.Context(), "/"); err != nil || body != "ok" {
		t.Fatalf("first call: %q, %v", body, err)
	}
	src := clock.NewReal()
	for _, cancel := range []bool{false, true} {
		ctx, stop := context.WithTimeout(t.Context(), 100*time.Millisecond)
		want := context.DeadlineExceeded
		if cancel {
			ctx, stop = context.WithCancel(t.Context())
			want = context.Canceled
			go func() { <-src.After(100 * time.Millisecond); stop() }()
		}
		start := src.Mono()
		_, err := get(ctx, "/hang")
		stop()
		if !errors.Is(err, want) {
			t.Errorf("cancel %v: error %v, want %v", cancel, err, want)
		}
		if d := src.Mono() - start; d > 5*time.Second {
			t.Errorf("cancel %v: returned after %v", cancel, d)
		}
		if body, err := get(t.Context(), "/"); err != nil || body != "ok" {
			t.Fatalf("cancel %v: the call after: %q, %v", cancel, body, err)
		}
	}
}

// TestTransportReadsAnyAnswer: answers that net/http's server writes
// chunked, or with Connection: close, arrive whole, and the connection is
// reused only when the server allows it.
func TestTransportReadsAnyAnswer(t *testing.T) {
	var conns atomic.Int64
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		default:
			io.WriteString(w, "plain")
		}
	}))
	hs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	hs.Start()
	t.Cleanup(hs.Close)
	cl := &http.Client{Transport: loadtest.NewTransport(clock.NewReal())}
	t.Cleanup(cl.CloseIdleConnections)
	for _, tt := range []struct{ path, body string }{
		{"/chunked", "part one, part two"},
		{"/", "plain"},
		{"/close", "bye"},
		{"/", "plain"},
	} {
		resp, err := cl.Post(hs.URL+tt.path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != tt.body {
			t.Errorf("%s: %q, %v; want %q", tt.path, b, err, tt.body)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: one until Connection: close, then another", n)
	}
}

// TestTransportKeepsConnectionsBetweenShortCalls: a call's deadline does
// not stay on its connection, so a connection idle longer than the last
// call's timeout is reused, not redialed.
func TestTransportKeepsConnectionsBetweenShortCalls(t *testing.T) {
	s, err := rpc.NewServer(newIssuer(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	url, ln := serveCounting(t, s, 0)
	c := newTransportClient(t, []string{url}, migclient.WithTimeout(100*time.Millisecond))
	for i := range 3 {
		if _, _, err := c.NextIDs(t.Context(), 1); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		<-clock.NewReal().After(250 * time.Millisecond)
	}
	if n := ln.n.Load(); n != 1 {
		t.Errorf("%d connections for calls 250ms apart with a 100ms timeout, want 1", n)
	}
}

// TestTransportExpiresIdleConnections: a connection idle longer than the
// transport's limit is closed and replaced when the pool is next used.
func TestTransportExpiresIdleConnections(t *testing.T) {
	s, err := rpc.NewServer(newIssuer(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	url, ln := serveCounting(t, s, 0)
	src := clock.NewManual(clock.NewReal().Now().Wall)
	cl := &http.Client{Transport: loadtest.NewTransport(src)}
	t.Cleanup(cl.CloseIdleConnections)
	call := func() {
		resp, err := cl.Post(url+"/twirp/mig.v1.IDService/NextIDs", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	call()
	call()
	src.Advance(29 * time.Second) // idle, under the limit: kept, and checked open
	call()
	if n := ln.n.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	src.Advance(31 * time.Second)
	call()
	if n := ln.n.Load(); n != 2 {
		t.Errorf("%d connections after 31s idle, want 2", n)
	}
}

// newTransportClient returns a client of endpoints on the pooled
// transport.
func newTransportClient(t testing.TB, endpoints []string, opts ...migclient.Option) *migclient.Client {
	t.Helper()
	tr := loadtest.NewTransport(clock.NewReal())
	c, err := migclient.New(endpoints, append([]migclient.Option{migclient.WithHTTPClient(&http.Client{Transport: tr})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}
