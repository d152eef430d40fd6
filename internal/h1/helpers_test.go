package h1_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/h1"
)

// start serves s on a loopback listener until the test ends, and returns
// its address.
func start(t testing.TB, s *h1.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, h1.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// rawConn is a client connection that writes bytes as given and reads
// answers with net/http's parser.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	// A bound on every read, so that a server that fails to answer fails
	// the test instead of hanging it.
	nc.SetDeadline(clock.NewReal().Now().Wall.Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one answer to a request of method and returns it with its
// body read.
func (c *rawConn) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading an answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading an answer's body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection: the next read
// ends without a byte.
func (c *rawConn) closed() bool {
	c.t.Helper()
	_, err := c.br.ReadByte()
	return err != nil
}

// echo answers with what it saw of the request, one "key=value" per line.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Method", r.Method)
	lines := []string{
		"method=" + r.Method,
		"path=" + r.URL.Path,
		"query=" + r.URL.RawQuery,
		"host=" + r.Host,
		"proto=" + r.Proto,
		"x-test=" + strings.Join(r.Header.Values("X-Test"), ","),
		"body=" + string(body),
		"tls=" + boolString(r.TLS != nil),
	}
	io.WriteString(w, strings.Join(lines, "\n"))
}

func boolString(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func field(t testing.TB, echoed, key string) string {
	t.Helper()
	for line := range strings.SplitSeq(echoed, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return v
		}
	}
	t.Fatalf("no %s in %q", key, echoed)
	return ""
}

// lockedWriter lets a connection's goroutine log while the test reads.
type lockedWriter struct {
	mu sync.Mutex
	w  strings.Builder
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
