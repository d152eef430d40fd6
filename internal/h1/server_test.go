package h1_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/h1"
)

// TestClient runs net/http's client against the server: keep-alive, a
// query, repeated header fields, a body, the Host.
func TestClient(t *testing.T) {
	var conns atomic.Int32
	s := &h1.Server{Handler: http.HandlerFunc(echo)}
	addr := start(t, s)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			conns.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, a)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := range 3 {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/a/b?x=1", strings.NewReader(fmt.Sprint("body", i)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add("X-Test", "one")
		req.Header.Add("X-Test", "two")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		for k, want := range map[string]string{
			"method": "POST", "path": "/a/b", "query": "x=1", "host": addr,
			"proto": "HTTP/1.1", "x-test": "one,two", "body": fmt.Sprint("body", i), "tls": "no",
		} {
			if v := field(t, got, k); v != want {
				t.Errorf("request %d: %s = %q, want %q", i, k, v, want)
			}
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Method") != "POST" || resp.Header.Get("Date") == "" {
			t.Errorf("request %d: status %d, header %v", i, resp.StatusCode, resp.Header)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests, want 1 kept alive", n)
	}
}

// TestFast checks that a FastHandler answers what it takes and that what
// it declines, or may not see, reaches Handler.
func TestFast(t *testing.T) {
	s := &h1.Server{
		Handler: http.HandlerFunc(echo),
		Fast: map[string]h1.FastHandler{"/fast": func(w *h1.ResponseWriter, r *h1.FastRequest) bool {
			if string(r.Body) != "take" {
				return false
			}
			w.SetContentType("application/x-fast")
			w.Write(append(w.AvailableBuffer(), "fast:"...))
			w.Write([]byte(r.ContentType))
			return true
		}},
	}
	c := dial(t, start(t, s))
	for _, tc := range []struct {
		name, req, method string
		fast              bool
	}{
		{"taken", "POST /fast HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\nContent-Length: 4\r\n\r\ntake", "POST", true},
		{"declined", "POST /fast HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nleave", "POST", false},
		{"GET", "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n", "GET", false},
		{"query", "POST /fast?q HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\ntake", "POST", false},
		{"chunked", "POST /fast HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ntake\r\n0\r\n\r\n", "POST", false},
	} {
		c.send(tc.req)
		resp, body := c.read(tc.method)
		if got := resp.Header.Get("Content-Type") == "application/x-fast"; got != tc.fast {
			t.Errorf("%s: answered by the fast path: %v, want %v (body %q)", tc.name, got, tc.fast, body)
		}
		if tc.fast && body != "fast:a/b" {
			t.Errorf("%s: body %q", tc.name, body)
		}
	}
}

// TestFastKeepsLocalAndAllocatesNothing: a connection hands its fast
// handler the same Local on every request, and, once warm, a request
// answered on the fast path allocates nothing in the server (nor in this
// client, which reads answers of a known size into one buffer).
func TestFastKeepsLocalAndAllocatesNothing(t *testing.T) {
	s := &h1.Server{
		Handler: http.HandlerFunc(echo),
		Fast: map[string]h1.FastHandler{"/n": func(w *h1.ResponseWriter, r *h1.FastRequest) bool {
			n, _ := (*r.Local).(*uint64)
			if n == nil {
				n = new(uint64)
				*r.Local = n
			}
			*n++
			w.Write(binary.BigEndian.AppendUint64(w.AvailableBuffer(), *n))
			return true
		}},
	}
	c := dial(t, start(t, s))
	req := []byte("POST /n HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx")
	c.send(string(req))
	resp, body := c.read("POST")
	if resp.StatusCode != http.StatusOK || body != "\x00\x00\x00\x00\x00\x00\x00\x01" {
		t.Fatalf("first answer %d %q", resp.StatusCode, body)
	}
	buf := make([]byte, 0, 4096)
	want := uint64(1)
	round := func() {
		if _, err := c.nc.Write(req); err != nil {
			t.Fatal(err)
		}
		// The header byte by byte up to its end, then the 8-byte body.
		for buf = buf[:0]; !bytes.HasSuffix(buf, []byte("\r\n\r\n")); buf = buf[:len(buf)+1] {
			if _, err := io.ReadFull(c.nc, buf[len(buf):len(buf)+1]); err != nil {
				t.Fatal(err)
			}
		}
		body := buf[len(buf) : len(buf)+8]
		if _, err := io.ReadFull(c.nc, body); err != nil {
			t.Fatal(err)
		}
		want++
		if got := binary.BigEndian.Uint64(body); got != want {
			t.Fatalf("answer %d on the connection's Local, want %d", got, want)
		}
	}
	for range 10 {
		round()
	}
	if allocs := testing.AllocsPerRun(500, round); allocs != 0 {
		t.Errorf("%v allocations per fast request, want 0", allocs)
	}
}

// TestPipelining sends several requests in one write: the answers come in
// order, fast and slow mixed, and a body split across them stays whole.
func TestPipelining(t *testing.T) {
	s := &h1.Server{
		Handler: http.HandlerFunc(echo),
		Fast: map[string]h1.FastHandler{"/fast": func(w *h1.ResponseWriter, r *h1.FastRequest) bool {
			w.Write(r.Body)
			return true
		}},
	}
	c := dial(t, start(t, s))
	var reqs strings.Builder
	for i := range 10 {
		body := fmt.Sprint("n", i)
		path := "/slow"
		if i%2 == 0 {
			path = "/fast"
		}
		fmt.Fprintf(&reqs, "POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	}
	c.send(reqs.String())
	for i := range 10 {
		_, body := c.read("POST")
		want := fmt.Sprint("n", i)
		if i%2 == 1 {
			body = field(t, body, "body")
		}
		if body != want {
			t.Errorf("answer %d: %q, want %q", i, body, want)
		}
	}
}

// TestChunked reads a chunked body and serves the next request on the
// same connection; a body with trailer fields fails to read, saying so,
// and the connection closes.
func TestChunked(t *testing.T) {
	addr := start(t, &h1.Server{Handler: http.HandlerFunc(echo)})
	c := dial(t, addr)
	c.send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\n\r\n" +
		"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.read("POST"); field(t, body, "body") != "abcdefgh" {
		t.Errorf("chunked body read as %q", field(t, body, "body"))
	}
	if _, body := c.read("GET"); field(t, body, "path") != "/next" {
		t.Errorf("next request: %q", body)
	}

	c = dial(t, addr)
	c.send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, body := c.read("POST"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "trailer fields") {
		t.Errorf("body with a trailer: status %d, %q", resp.StatusCode, body)
	}
	if !c.closed() {
		t.Error("connection still open after a body that could not be read")
	}
}

// TestExpectContinue sends the body only after "100 Continue", and checks
// that a handler that never reads the body gets the connection closed.
func TestExpectContinue(t *testing.T) {
	addr := start(t, &h1.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ignore" {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			echo(w, r)
		}),
	})
	c := dial(t, addr)
	c.send("POST /read HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	resp, _ := c.read("POST")
	if resp.StatusCode != http.StatusContinue {
		t.Fatalf("status %d before the body, want 100", resp.StatusCode)
	}
	c.send("hello")
	if _, body := c.read("POST"); field(t, body, "body") != "hello" {
		t.Errorf("body %q", body)
	}

	c = dial(t, addr)
	c.send("POST /ignore HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	if resp, _ := c.read("POST"); resp.StatusCode != http.StatusForbidden || !resp.Close {
		t.Errorf("status %d, close %v: want 403 and the connection closed", resp.StatusCode, resp.Close)
	}
	if !c.closed() {
		t.Error("connection still open after an unread body the client holds back")
	}
}

// TestRefused sends what the server must refuse: each gets its status and
// the connection closes.
func TestRefused(t *testing.T) {
	addr := start(t, &h1.Server{Handler: http.HandlerFunc(echo), MaxHeaderBytes: 1 << 10})
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"HTTP/2", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"not HTTP", "GET / FTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"no target", "GET HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"two lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"negative length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
		{"length not decimal", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400},
		{"huge length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n", 400},
		{"folded line", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n", 400},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x00c\r\n\r\n", 400},
		{"line without colon", "GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", 400},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"odd Expect", "POST / HTTP/1.1\r\nHost: h\r\nExpect: coffee\r\nContent-Length: 1\r\n\r\nx", 417},
		{"header too large", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 2<<10) + "\r\n\r\n", 431},
		{"chunked HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"odd Expect in HTTP/1.0", "GET / HTTP/1.0\r\nExpect: coffee\r\n\r\n", 417},
		{"malformed Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"lengths spelled differently", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 01\r\n\r\nx", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			c.send(tc.req)
			resp, body := c.read("GET")
			if resp.StatusCode != tc.status {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tc.status)
			}
			if !strings.HasPrefix(body, http.StatusText(tc.status)+": ") {
				t.Errorf("body %q does not say what was wrong", body)
			}
			if !c.closed() {
				t.Error("connection still open after a refusal")
			}
		})
	}
}

// TestHTTP10 closes an HTTP/1.0 connection after its answer unless the
// client asked to keep it.
func TestHTTP10(t *testing.T) {
	addr := start(t, &h1.Server{Handler: http.HandlerFunc(echo)})
	c := dial(t, addr)
	c.send("GET /a HTTP/1.0\r\n\r\n")
	if _, body := c.read("GET"); field(t, body, "proto") != "HTTP/1.0" {
		t.Errorf("proto %q", field(t, body, "proto"))
	}
	if !c.closed() {
		t.Error("HTTP/1.0 connection kept without keep-alive")
	}
	c = dial(t, addr)
	for range 2 {
		c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		c.read("GET")
	}
}

// TestHead answers HEAD with GET's length and no body: the next answer on
// the connection parses.
func TestHead(t *testing.T) {
	c := dial(t, start(t, &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "twelve bytes")
	})}))
	c.send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, body := c.read("HEAD")
	if resp.ContentLength != 12 || body != "" {
		t.Errorf("HEAD: length %d, body %q", resp.ContentLength, body)
	}
	if _, body := c.read("GET"); body != "twelve bytes" {
		t.Errorf("GET after HEAD: %q", body)
	}
}

// TestLargeAnswer sends an answer far over the connection's buffers.
func TestLargeAnswer(t *testing.T) {
	big := strings.Repeat("0123456789", 200_000)
	c := dial(t, start(t, &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, big)
	})}))
	for range 2 {
		c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, body := c.read("GET"); body != big {
			t.Fatalf("answer of %d bytes, want %d", len(body), len(big))
		}
	}
}

// TestTruncatedBody gives the handler an error, not a short body, when
// the client closes before sending all it declared.
func TestTruncatedBody(t *testing.T) {
	got := make(chan error, 1)
	c := dial(t, start(t, &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	})}))
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
	c.nc.(*net.TCPConn).CloseWrite()
	if err := <-got; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading a truncated body: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestShutdown lets a request in flight finish, closes an idle
// connection, and returns once both are done.
func TestShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})}
	addr := start(t, s)
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	idle.read("GET")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Error("idle connection still open after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-clock.NewReal().After(100 * time.Millisecond):
	}
	close(release)
	resp, body := busy.read("GET")
	if body != "done" || !resp.Close {
		t.Errorf("answer in flight: %q, close %v; want done and Connection: close", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
}

// TestShutdownTimeout returns ctx's error while a handler holds on, and
// Close then cancels the handler's context.
func TestShutdownTimeout(t *testing.T) {
	entered, ended := make(chan struct{}), make(chan struct{})
	s := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(ended)
	})}
	c := dial(t, start(t, s))
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with a request held: %v, want context.Canceled", err)
	}
	s.Close()
	<-ended
	if !c.closed() {
		t.Error("connection open after Close")
	}
}

// TestTimeouts closes a connection idle too long and one whose header
// does not arrive in time.
func TestTimeouts(t *testing.T) {
	addr := start(t, &h1.Server{
		Handler:           http.HandlerFunc(echo),
		IdleTimeout:       200 * time.Millisecond,
		ReadHeaderTimeout: 200 * time.Millisecond,
	})
	src := clock.NewReal()
	for _, tc := range []struct{ name, send string }{
		{"idle", ""},
		{"header", "GET / HTTP/1.1\r\nHost:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			before := src.Mono()
			c.send(tc.send)
			if !c.closed() {
				t.Fatal("read something")
			}
			if d := src.Mono() - before; d > 5*time.Second {
				t.Errorf("closed after %v", d)
			}
		})
	}
}

// TestIdleTimeoutAfterRequest: a connection idle after a request closes
// after IdleTimeout, even when a longer timeout (here ReadHeaderTimeout,
// from the accept) set its read deadline last.
func TestIdleTimeoutAfterRequest(t *testing.T) {
	addr := start(t, &h1.Server{
		Handler:           http.HandlerFunc(echo),
		IdleTimeout:       200 * time.Millisecond,
		ReadHeaderTimeout: time.Minute,
	})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	src := clock.NewReal()
	before := src.Mono()
	if !c.closed() {
		t.Fatal("read something")
	}
	if d := src.Mono() - before; d > 5*time.Second {
		t.Errorf("closed after %v, IdleTimeout 200ms", d)
	}
}

// TestPanic closes the connection of a handler that panics, logs it, and
// goes on serving others.
func TestPanic(t *testing.T) {
	var logged lockedWriter
	s := &h1.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/panic" {
				panic("handler bug")
			}
			echo(w, r)
		}),
		Log: slog.New(slog.NewTextHandler(&logged, nil)),
	}
	addr := start(t, s)
	c := dial(t, addr)
	c.send("GET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	if !c.closed() {
		t.Error("connection open after a panic")
	}
	c = dial(t, addr)
	c.send("GET /fine HTTP/1.1\r\nHost: h\r\n\r\n")
	c.read("GET")
	s.Close()
	if l := logged.String(); !strings.Contains(l, "handler bug") {
		t.Errorf("log %q does not name the panic", l)
	}
}

// TestTLS serves over a TLS listener, negotiating HTTP/1.1.
func TestTLS(t *testing.T) {
	cert := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logged lockedWriter
	s := &h1.Server{Handler: http.HandlerFunc(echo), Log: slog.New(slog.NewTextHandler(&logged, nil))}
	done := make(chan error, 1)
	go func() {
		done <- s.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}))
	}()
	defer func() { s.Close(); <-done }()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + ln.Addr().String() + "/tls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 1 || field(t, string(b), "tls") != "yes" {
		t.Errorf("proto %s, body %q", resp.Proto, b)
	}

	// Plain HTTP to the TLS port fails its handshake, which is logged.
	c := dial(t, ln.Addr().String())
	c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	c.closed()
	s.Close()
	<-done
	done <- nil // for the deferred wait
	if l := logged.String(); !strings.Contains(l, "TLS handshake failed") {
		t.Errorf("log %q does not report the failed handshake", l)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.NewReal().Now().Wall
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestQueuedAnswersGoOut checks that answers queued behind pipelined
// requests are sent before any read that may block: after a request
// followed by part of the next, after stray line ends, and when the
// connection closes.
func TestQueuedAnswersGoOut(t *testing.T) {
	addr := start(t, &h1.Server{
		Handler:           http.HandlerFunc(echo),
		ReadHeaderTimeout: time.Minute, // longer than the client waits
		IdleTimeout:       time.Minute,
	})
	t.Run("partial next request", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTT")
		if _, body := c.read("GET"); field(t, body, "path") != "/one" {
			t.Fatalf("first answer %q", body)
		}
		c.send("P/1.1\r\nHost: h\r\n\r\n")
		if _, body := c.read("GET"); field(t, body, "path") != "/two" {
			t.Fatalf("second answer %q", body)
		}
	})
	t.Run("line end after a body", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab\r\n")
		if _, body := c.read("POST"); field(t, body, "body") != "ab" {
			t.Fatalf("answer %q", body)
		}
		c.send("GET /two HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, body := c.read("GET"); field(t, body, "path") != "/two" {
			t.Fatalf("answer after the stray line end: %q", body)
		}
	})
	t.Run("refused after answered", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /one HTTP/1.1\r\nHost: h\r\n\r\nBAD\r\n\r\n")
		if _, body := c.read("GET"); field(t, body, "path") != "/one" {
			t.Fatalf("first answer %q", body)
		}
		if resp, _ := c.read("GET"); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d for a malformed request, want 400", resp.StatusCode)
		}
	})
}

// TestFirstRequestTimeout closes a new connection that sends nothing
// after ReadHeaderTimeout, not IdleTimeout.
func TestFirstRequestTimeout(t *testing.T) {
	addr := start(t, &h1.Server{
		Handler:           http.HandlerFunc(echo),
		ReadHeaderTimeout: 200 * time.Millisecond,
		IdleTimeout:       time.Minute,
	})
	c := dial(t, addr) // the client waits 10s at most
	if !c.closed() {
		t.Fatal("read something")
	}
}

// TestHost accepts an empty Host and ignores Expect in HTTP/1.0.
func TestHost(t *testing.T) {
	c := dial(t, start(t, &h1.Server{Handler: http.HandlerFunc(echo)}))
	c.send("GET / HTTP/1.1\r\nHost:\r\n\r\n")
	if resp, _ := c.read("GET"); resp.StatusCode != http.StatusOK {
		t.Errorf("empty Host: status %d", resp.StatusCode)
	}
	c.send("GET / HTTP/1.1\r\nHost:\r\nHost: b\r\n\r\n")
	if resp, _ := c.read("GET"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty Host and another: status %d, want 400", resp.StatusCode)
	}
	c = dial(t, start(t, &h1.Server{Handler: http.HandlerFunc(echo)}))
	c.send("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
	if resp, body := c.read("POST"); resp.StatusCode != http.StatusOK || field(t, body, "body") != "hi" {
		t.Errorf("HTTP/1.0 with Expect: status %d, body %q", resp.StatusCode, body)
	}
}
