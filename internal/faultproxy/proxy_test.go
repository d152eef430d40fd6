package faultproxy

import (
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

var clk = clock.NewReal()

// echoServer echoes every byte back on 127.0.0.1 and counts what reaches it.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	received atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.wg.Go(e.serve)
	t.Cleanup(e.close)
	return e
}

func (e *echoServer) serve() {
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.accepted.Add(1)
		e.mu.Lock()
		e.conns = append(e.conns, c)
		e.mu.Unlock()
		e.wg.Go(func() {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				e.received.Add(int64(n))
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}

func (e *echoServer) close() {
	e.ln.Close()
	e.mu.Lock()
	for _, c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

func newProxy(t *testing.T, target string, opts ...Option) *Proxy {
	t.Helper()
	p, err := New(target, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", target, err)
	}
	t.Cleanup(p.Close)
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if err := c.SetWriteDeadline(clk.Now().Wall.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// readN reads exactly n bytes within d.
func readN(c net.Conn, n int, d time.Duration) (string, error) {
	if err := c.SetReadDeadline(clk.Now().Wall.Add(d)); err != nil {
		return "", err
	}
	buf := make([]byte, n)
	got, err := io.ReadFull(c, buf)
	return string(buf[:got]), err
}

func roundTrip(t *testing.T, c net.Conn, s string) {
	t.Helper()
	write(t, c, s)
	got, err := readN(c, len(s), 5*time.Second)
	if err != nil || got != s {
		t.Fatalf("echo of %q = %q, %v", s, got, err)
	}
}

// eventually polls cond for up to 5 s: counters are updated right after the
// bytes they count are written, so a reader may see the bytes first.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := clk.Mono() + 5*time.Second
	for !cond() {
		if clk.Mono() > deadline {
			t.Fatalf("never: %s", what)
		}
		<-clk.After(5 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestForward(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")
	roundTrip(t, c, strings.Repeat("x", 200_000)) // several chunks
	want := int64(5 + 200_000)
	eventually(t, "stats count every byte", func() bool {
		s := p.Stats()
		return s.Accepted == 1 && s.Open == 1 && s.BytesToTarget == want && s.BytesToClient == want
	})
	if p.Target() != e.ln.Addr().String() {
		t.Fatalf("Target() = %s", p.Target())
	}
}

func TestCutHoldsAndRestoreDelivers(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "a")

	p.Cut()
	p.Cut() // idempotent
	write(t, c, "hello ")
	write(t, c, "world")
	// A partition is silence: the read times out, it does not fail.
	if got, err := readN(c, 1, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("read during cut = %q, %v; want a timeout", got, err)
	}
	// A connection made during the cut is accepted but goes nowhere.
	late := dial(t, p.Addr())
	write(t, late, "late")
	if got, err := readN(late, 1, 100*time.Millisecond); !isTimeout(err) {
		t.Fatalf("read on a connection made during the cut = %q, %v; want a timeout", got, err)
	}
	if got := e.received.Load(); got != 1 {
		t.Fatalf("server received %d bytes during the cut, want only the 1 before it", got)
	}
	if got := e.accepted.Load(); got != 1 {
		t.Fatalf("server accepted %d connections during the cut, want only the 1 before it", got)
	}

	p.Restore()
	p.Restore() // idempotent
	// The same connection goes on; what was held arrives, in order.
	if got, err := readN(c, len("hello world"), 5*time.Second); err != nil || got != "hello world" {
		t.Fatalf("after Restore read %q, %v; want the held %q", got, err, "hello world")
	}
	roundTrip(t, c, "again")
	if got, err := readN(late, len("late"), 5*time.Second); err != nil || got != "late" {
		t.Fatalf("late connection after Restore read %q, %v", got, err)
	}
}

func TestDelay(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "warm")

	const d = 100 * time.Millisecond
	p.Delay(d)
	start := clk.Mono()
	roundTrip(t, c, "slow")
	// Each direction adds at least d. (A lower bound is the feature; the
	// upper bound is the machine's business.)
	if took := clk.Mono() - start; took < 2*d {
		t.Fatalf("round trip with %v each way took %v", d, took)
	}

	// Chunks in flight together are delayed together, not one after the
	// other: ten writes in a row are all back after about one round trip.
	start = clk.Mono()
	for range 10 {
		write(t, c, "z")
		<-clk.After(time.Millisecond)
	}
	if got, err := readN(c, 10, 5*time.Second); err != nil || got != strings.Repeat("z", 10) {
		t.Fatalf("read %q, %v", got, err)
	}
	if took := clk.Mono() - start; took < 2*d {
		t.Fatalf("ten chunks came back after %v, before the delay", took)
	}

	p.Delay(0)
	roundTrip(t, c, "fast")
}

func TestReset(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "a")

	p.Reset()
	_, err := readN(c, 1, 5*time.Second)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after Reset: %v, want a connection reset", err)
	}
	eventually(t, "no open connections", func() bool { return p.Stats().Open == 0 })

	// The proxy itself carries on.
	roundTrip(t, dial(t, p.Addr()), "b")
}

func TestHalfClose(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	write(t, c, "bye")
	// The client has finished sending; the echo still comes back, then
	// the server's own close arrives as EOF.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, err := readN(c, 3, 5*time.Second); err != nil || got != "bye" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := readN(c, 1, 5*time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the server closed: %v, want EOF", err)
	}
	eventually(t, "no open connections", func() bool { return p.Stats().Open == 0 })
}

func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newProxy(t, addr)
	// The proxy passes the refusal on as a reset, which may arrive before
	// the client's connect has returned.
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err == nil {
		defer c.Close()
		_, err = readN(c, 1, 5*time.Second)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connecting through a proxy to nothing: %v, want a connection reset", err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   error
	}{
		{"127.0.0.1", ErrTarget},
		{"127.0.0.1:http", ErrTarget},
		{"127.0.0.1:70000", ErrTarget},
		{"10.0.0.1:2379", ErrNotLoopback},
		{"localhost:2379", ErrNotLoopback},
		{"[::1]:2379", nil},
	} {
		p, err := New(tc.target)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("New(%q) = %v, want %v", tc.target, err, tc.want)
		}
		if p != nil {
			p.Close()
		}
	}
}

// proxyGoroutines counts goroutines running the proxy's own code.
func proxyGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "faultproxy.(*Proxy)") || strings.Contains(g, "faultproxy.(*link)") {
			count++
		}
	}
	return count
}

func TestCloseEndsEveryGoroutine(t *testing.T) {
	e := startEcho(t)
	p, err := New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Connections in every state: flowing, delayed, paused with data held,
	// and accepted during a cut.
	flowing := dial(t, p.Addr())
	roundTrip(t, flowing, "a")
	p.Delay(time.Hour)
	write(t, flowing, "held by the delay")
	paused := dial(t, p.Addr())
	p.Delay(0)
	p.Cut()
	write(t, paused, "held by the cut")
	dial(t, p.Addr())
	eventually(t, "three connections", func() bool { return p.Stats().Accepted == 3 })
	if proxyGoroutines() == 0 {
		t.Fatal("no proxy goroutines found before Close: the check is blind")
	}

	var wg sync.WaitGroup
	for range 3 { // Close from several goroutines at once: all return
		wg.Go(p.Close)
	}
	wg.Wait()
	// Close has waited for its goroutines; a finishing goroutine may still
	// be on its way out of a deferred call, hence the short poll.
	eventually(t, "no proxy goroutines after Close", func() bool { return proxyGoroutines() == 0 })
	p.Close()

	if err := flowing.SetReadDeadline(clk.Now().Wall.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(flowing); isTimeout(err) {
		t.Fatalf("read from a closed proxy: %v, want the connection closed", err)
	}
}
