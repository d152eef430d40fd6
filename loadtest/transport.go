package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/migsvc/mig/clock"
)

// Transport is the load generator's http.RoundTripper, for a
// migclient.Client through migclient.WithHTTPClient (`mig loadtest` uses
// it unless told --transport net/http). Over http:// it keeps a pool of
// keep-alive HTTP/1.1 connections per host and makes each call on the
// caller's goroutine: it writes the request, reads the answer whole, and
// puts the connection back. Requests and answers are written and parsed
// by net/http itself (Request.Write, ReadResponse); what differs from
// http.Transport is only the work around them. That one runs two
// goroutines per connection and hands every request and answer between
// them and the caller over channels, which for MIG's few-byte calls
// costs more CPU than the call.
//
// It lives here, not as migclient's default, because only a load
// generator needs what it saves: measured side by side (nine interleaved
// pairs of runs, docs/benchmarks.md), `mig loadtest --mode ids --clients
// 50` spent 17-20 µs of its own CPU a call with it and 27-35 µs with
// migclient's tuned http.Transport, and drove 1.3 to 1.9 times the calls
// a second from the two cores it shares with the server. An application
// spends far more than 10 µs on whatever it does with an ID, and is
// better served by net/http's proxies, HTTP/2 and years of hardening.
//
// https:// (and http:// when the environment names a proxy) goes to
// fallback, net/http's Transport.
//
// Like http.Transport, it sends a POST again only if not a byte of it was
// written: on a reused connection that fails before, the request is sent
// once more on a new one. A connection idle over idleCheckAfter is
// checked before reuse, since a server may have closed it (h1's
// IdleTimeout, or a shutdown), and an answer cut short is an error, never
// a retry. One closed less than idleCheckAfter before is found only by
// the call that reuses it, whose error then fails over (http.Transport's
// reader, always waiting on the connection, usually sees it first).
//
// Safe for concurrent use.
type Transport struct {
	src      clock.Source
	fallback http.RoundTripper
	proxied  bool // http:// goes to fallback, for its proxy
	dialer   net.Dialer

	mu   sync.Mutex
	idle map[string][]*poolConn // by host:port, most recently used last
}

// poolConn is one connection of the pool. Used by one call at a time.
type poolConn struct {
	nc       net.Conn
	br       *bufio.Reader
	lastUsed time.Duration // monotonic, when it went idle
}

const (
	// maxIdlePerHost bounds the connections kept per server, as
	// migclient's default transport does.
	maxIdlePerHost = 64
	// idleCheckAfter is how long a connection may sit idle before it is
	// checked for a close from the server before reuse. A check costs a
	// system call, so a connection in steady use is not checked; a server
	// closes a connection that recent only as it shuts down.
	idleCheckAfter = 10 * time.Millisecond
	// maxIdleTime closes a connection idle this long, when the pool is
	// next used: the server's own idle timeout is longer by default, so
	// the client closes first. (A client that stops calling altogether
	// keeps its idle connections until CloseIdleConnections.)
	maxIdleTime = 30 * time.Second
)

// NewTransport returns a Transport that reads the time (for idle
// connections) from src. CloseIdleConnections closes what it keeps.
func NewTransport(src clock.Source) *Transport {
	return &Transport{
		src:      src,
		fallback: newFallback(),
		proxied:  os.Getenv("HTTP_PROXY") != "" || os.Getenv("http_proxy") != "",
		dialer:   net.Dialer{KeepAlive: 30 * time.Second},
		idle:     map[string][]*poolConn{},
	}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || t.proxied {
		return t.fallback.RoundTrip(req)
	}
	// The request is written out once, before any connection is taken:
	// Request.Write reads and closes the body, as RoundTrip must, and a
	// request sent again is the same bytes.
	out := outBuffers.Get().(*bytes.Buffer)
	defer putOut(out)
	out.Reset()
	if err := req.Write(out); err != nil {
		return nil, err
	}
	ctx, host := req.Context(), dialAddr(req.URL)
	for {
		pc, reused, err := t.get(ctx, host)
		if err != nil {
			return nil, err
		}
		resp, sent, err := t.call(ctx, pc, host, req, out.Bytes())
		if err == nil {
			return resp, nil
		}
		pc.nc.Close()
		if sent || !reused || ctx.Err() != nil {
			return nil, err
		}
		// Not a byte left on a connection the server had closed: the
		// same bytes go again, on the next idle connection or a new one,
		// which ends the loop.
	}
}

// dialAddr is the host:port to dial for u, an http:// URL: its own, or
// port 80.
func dialAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// outBuffers hold requests being written; putOut returns one.
var outBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putOut(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 { // a rare large batch is not kept
		outBuffers.Put(b)
	}
}

// call sends out, req written, on pc and reads the answer, and puts pc
// back in the pool if it may serve again; on an error the caller closes
// it. sent says whether any of out may have been written: if not, it may
// be sent again.
func (t *Transport) call(ctx context.Context, pc *poolConn, host string, req *http.Request, out []byte) (*http.Response, bool, error) {
	deadline, _ := ctx.Deadline()
	if err := pc.nc.SetDeadline(deadline); err != nil { // zero: none
		return nil, false, err
	}
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(longAgo) })
	resp, sent, err := pc.exchange(req, out)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's deadlines are ctx's own, or the one its end
		// set: ctx is done, or due.
		<-ctx.Done()
	}
	if !stop() || ctx.Err() != nil {
		// ctx ended during the call, and the connection may hold its
		// deadline: the call ends with ctx's error, as http.Transport's
		// would, and the connection goes.
		return nil, sent, ctx.Err()
	}
	if err != nil {
		return nil, sent, err
	}
	if resp.Close || req.Close || pc.br.Buffered() > 0 {
		pc.nc.Close() // the server said so, or sent more than it was asked
	} else if pc.nc.SetDeadline(time.Time{}) == nil { // none while idle: the check before reuse reads
		t.put(host, pc)
	}
	return resp, true, nil
}

// exchange writes out whole, then reads req's answer whole.
func (pc *poolConn) exchange(req *http.Request, out []byte) (resp *http.Response, sent bool, err error) {
	if n, err := pc.nc.Write(out); err != nil {
		return nil, n > 0, err
	}
	if resp, err = http.ReadResponse(pc.br, req); err != nil {
		return nil, true, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, true, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, true, nil
}

// longAgo is a deadline in the past, to interrupt a blocked read or write.
var longAgo = time.Unix(1, 0)

// get returns an idle connection to host, or a new one; reused says
// which.
func (t *Transport) get(ctx context.Context, host string) (pc *poolConn, reused bool, err error) {
	for {
		now := t.src.Mono()
		t.mu.Lock()
		pool := t.expire(t.idle[host], now)
		if len(pool) == 0 {
			t.idle[host] = pool
			t.mu.Unlock()
			break
		}
		pc = pool[len(pool)-1]
		t.idle[host] = pool[:len(pool)-1]
		t.mu.Unlock()
		if now-pc.lastUsed < idleCheckAfter || pc.open() {
			return pc, true, nil
		}
		pc.nc.Close()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	return &poolConn{nc: nc, br: bufio.NewReader(nc)}, false, nil
}

// expire closes the connections of pool, oldest first, idle longer than
// maxIdleTime at now, and returns the rest. Called with t.mu held.
func (t *Transport) expire(pool []*poolConn, now time.Duration) []*poolConn {
	n := 0
	for n < len(pool) && now-pool[n].lastUsed > maxIdleTime {
		pool[n].nc.Close()
		n++
	}
	return slices.Delete(pool, 0, n)
}

// open reports whether the server has neither closed pc nor sent
// anything unasked, by a look at the socket that does not wait.
func (pc *poolConn) open() bool {
	return pc.br.Buffered() == 0 && socketIdle(pc.nc)
}

// put makes pc idle, or closes it if host has enough idle connections.
func (t *Transport) put(host string, pc *poolConn) {
	pc.lastUsed = t.src.Mono()
	t.mu.Lock()
	defer t.mu.Unlock()
	pool := t.expire(t.idle[host], pc.lastUsed)
	if len(pool) >= maxIdlePerHost {
		pc.nc.Close()
	} else {
		pool = append(pool, pc)
	}
	t.idle[host] = pool
}

// CloseIdleConnections closes every idle connection, the fallback's too;
// http.Client.CloseIdleConnections calls it.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*poolConn{}
	t.mu.Unlock()
	for _, pool := range idle {
		for _, pc := range pool {
			pc.nc.Close()
		}
	}
	if c, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// newFallback returns the transport of https:// and proxied requests:
// net/http's, keeping as many idle connections per host as the pool.
func newFallback() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = maxIdlePerHost
	return t
}
