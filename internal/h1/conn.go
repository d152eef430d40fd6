package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

const (
	// readBufferSize is a connection's read buffer until a header needs
	// more; a MIG request is about 150 bytes.
	readBufferSize = 4 << 10
	// largeBody is the body size from which an answer is written with
	// writev instead of being copied behind its header.
	largeBody = 16 << 10
	// maxDrain is the most of an unread request body the server reads
	// and discards to keep the connection; past it, it closes.
	maxDrain = 256 << 10
)

// aLongTimeAgo is a deadline that has passed: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection, served by one goroutine (serve).
type conn struct {
	srv    *Server
	nc     net.Conn
	br     *bufio.Reader
	out    []byte // answers not written yet: pipelined requests' answers go out together
	w      ResponseWriter
	fast   FastRequest // the fast route's request, here so as not to be allocated per request
	local  any         // FastRequest.Local
	head   requestHead
	ctx    context.Context
	cancel context.CancelFunc
	remote string
	tls    *tls.ConnectionState // read at the first request that needs it

	// now is the monotonic time (of srv.clock) at which the current
	// request's first byte was seen; deadlines are computed from it.
	now time.Duration
	// The deadlines last set on nc, in the same monotonic time; 0 for
	// none.
	readDeadline, writeDeadline time.Duration
	served                      bool // a request was read: the idle timeout applies

	mu struct {
		sync.Mutex
		idle bool // waiting for a request's first byte: Shutdown may wake it
	}
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(s.base)
	c := &conn{
		srv: s, nc: nc, br: bufio.NewReaderSize(nc, readBufferSize),
		ctx: ctx, cancel: cancel, remote: nc.RemoteAddr().String(),
		now: s.clock.Mono(),
	}
	// A new connection's first request (and TLS handshake) must come
	// within ReadHeaderTimeout, as with net/http.
	c.setDeadline(&c.readDeadline, nc.SetReadDeadline, c.now+s.ReadHeaderTimeout)
	return c
}

func (c *conn) serve() {
	defer c.close()
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler { //nolint:errorlint // the sentinel is panicked as is
			c.srv.Log.Error("panic serving a request; connection closed", "remote", c.remote, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	if tc, ok := c.nc.(*tls.Conn); ok && !c.handshake(tc) {
		return
	}
	for c.next() {
	}
}

// handshake completes a TLS handshake within ReadHeaderTimeout, logging a
// failure (a client without the certificate mutual TLS asks for, a
// plain-HTTP client) as net/http does.
func (c *conn) handshake(tc *tls.Conn) bool {
	c.setDeadline(&c.writeDeadline, c.nc.SetWriteDeadline, c.now+c.srv.ReadHeaderTimeout)
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.srv.Log.Warn("TLS handshake failed", "remote", c.remote, "err", err)
		return false
	}
	return true
}

func (c *conn) close() {
	// Answers queued for pipelined requests were taken (an ID, a
	// sequence value): send them, whatever ends the connection.
	c.flush()
	c.cancel()
	c.nc.Close()
	c.srv.trackConn(c, false)
}

// next serves one request and reports whether the connection goes on.
func (c *conn) next() bool {
	if !c.await() {
		return false
	}
	c.now = c.srv.clock.Mono()
	n, err := c.readHead()
	if err != nil {
		var se *statusError
		if errors.As(err, &se) {
			c.refuse(se)
		}
		return false
	}
	keep, err := c.handle(n)
	if err != nil {
		return false
	}
	// Answers to pipelined requests wait for the last of them, up to a
	// bound; any read that may block sends them first (c.fill).
	if !keep || c.br.Buffered() == 0 || len(c.out) >= maxKeptBody {
		if err := c.flush(); err != nil {
			return false
		}
	}
	return keep
}

// await waits for the first byte of the next request, which may be
// buffered already. It reports false if the connection should close: the
// server is shutting down, the client closed, or IdleTimeout passed.
func (c *conn) await() bool {
	c.mu.Lock()
	if c.srv.closing.Load() {
		c.mu.Unlock()
		return false
	}
	// HAZARD (of shutdown, not of IDs): the deadline is set under the
	// lock Shutdown's wakeIfIdle takes, or this could overwrite the past
	// deadline that wakes the read, and Shutdown would wait IdleTimeout.
	if c.served {
		c.refresh(&c.readDeadline, c.nc.SetReadDeadline, c.srv.IdleTimeout, c.srv.IdleTimeout*9/10)
	} // the first request has ReadHeaderTimeout from the accept (newConn)
	c.served = true
	c.mu.idle = true
	c.mu.Unlock()
	_, err := c.br.Peek(1)
	c.mu.Lock()
	c.mu.idle = false
	c.mu.Unlock()
	return err == nil
}

// wakeIfIdle makes a connection waiting for a request stop waiting; one
// in a request goes on and closes after its answer.
func (c *conn) wakeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.idle {
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// readHead reads until the buffer holds a whole request line and header,
// parses it into c.head, and returns its length.
func (c *conn) readHead() (int, error) {
	scanned := 0 // bytes known not to end the header
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if scanned == 0 {
			// Empty lines before a request line are ignored (RFC 9112
			// §2.2): some clients send a CRLF after a POST body.
			if i := bytes.IndexFunc(buf, func(r rune) bool { return r != '\r' && r != '\n' }); i != 0 {
				if i < 0 {
					i = len(buf)
				}
				c.br.Discard(i)
				if err := c.fill(1); err != nil {
					return 0, err
				}
				continue
			}
		}
		if headerEnds(buf, scanned) {
			n, err := parseHead(buf, &c.head)
			if err == nil && n > c.srv.MaxHeaderBytes {
				err = c.tooLarge()
			}
			return n, err
		}
		if len(buf) >= c.srv.MaxHeaderBytes {
			return 0, c.tooLarge()
		}
		if scanned == 0 { // the header did not come in one read: bound its time
			c.setDeadline(&c.readDeadline, c.nc.SetReadDeadline, c.now+c.srv.ReadHeaderTimeout)
		}
		scanned = max(len(buf)-2, 1)
		if len(buf) == c.br.Size() {
			c.grow()
		}
		if err := c.fill(len(buf) + 1); err != nil {
			return 0, err
		}
	}
}

func (c *conn) tooLarge() error {
	return &statusError{http.StatusRequestHeaderFieldsTooLarge,
		fmt.Sprintf("request line and header over %d bytes", c.srv.MaxHeaderBytes)}
}

// headerEnds reports whether buf holds an empty line, the end of a
// header, looking from about from on.
func headerEnds(buf []byte, from int) bool {
	for i := max(from-1, 0); ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return false
		}
		i += j + 1
		rest := buf[i:]
		if len(rest) > 0 && rest[0] == '\n' || len(rest) > 1 && rest[0] == '\r' && rest[1] == '\n' {
			return true
		}
	}
}

// fill reads until the buffer holds n bytes, first sending the answers
// queued for earlier requests: the client may wait for them before it
// sends more.
func (c *conn) fill(n int) error {
	if c.br.Buffered() < n {
		if err := c.flush(); err != nil {
			return err
		}
	}
	_, err := c.br.Peek(n)
	return err
}

// grow gives the connection a read buffer large enough for the largest
// header allowed, keeping what the old one holds.
func (c *conn) grow() {
	size := c.srv.MaxHeaderBytes + readBufferSize
	if c.br.Size() >= size {
		return
	}
	held, _ := c.br.Peek(c.br.Buffered())
	c.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(held)), c.nc), size)
}

// handle answers the request whose header, n bytes, is parsed in c.head,
// and reports whether the connection goes on.
func (c *conn) handle(n int) (bool, error) {
	h := &c.head
	if fast := c.srv.Fast[string(h.target)]; fast != nil && string(h.method) == http.MethodPost &&
		!h.chunked && !h.expect && h.length >= 0 && n+int(h.length) <= c.br.Size() {
		whole := n + int(h.length)
		if c.br.Buffered() < whole {
			c.setDeadline(&c.readDeadline, c.nc.SetReadDeadline, c.now+c.srv.ReadTimeout)
			if err := c.fill(whole); err != nil {
				return false, err
			}
			buf, _ := c.br.Peek(whole)
			// Reading may have moved the buffer's bytes under c.head.
			if _, err := parseHead(buf, h); err != nil {
				return false, err
			}
		}
		buf, _ := c.br.Peek(whole)
		c.fast = FastRequest{Context: c.ctx, ContentType: h.contentType, Body: buf[n:], Local: &c.local}
		closing := h.close
		answered := fast(&c.w, &c.fast)
		c.fast = FastRequest{}
		if answered {
			c.br.Discard(whole)
			return c.respond(closing, true)
		}
		c.w.Reset()
	}
	return c.serveHTTP(n)
}

// serveHTTP answers the request through Server.Handler.
func (c *conn) serveHTTP(n int) (bool, error) {
	h := &c.head
	req, err := c.newRequest()
	if err != nil {
		c.refuse(err.(*statusError))
		return false, nil
	}
	closing, expect := h.close, h.expect // c.head is not valid once the body is read
	c.br.Discard(n)
	var b *body
	if h.chunked || h.length > 0 {
		c.setDeadline(&c.readDeadline, c.nc.SetReadDeadline, c.now+c.srv.ReadTimeout)
		b = &body{c: c, expect: expect, chunked: h.chunked, left: h.length}
		if h.chunked {
			b.r = httputil.NewChunkedReader(c.br)
		} else {
			b.r = c.br
		}
		req.Body = b
	}
	c.srv.Handler.ServeHTTP(&c.w, req)
	if b != nil && !b.finish() {
		closing = true
	}
	return c.respond(closing, req.Method != http.MethodHead)
}

// newRequest builds the *http.Request of c.head, copying what it needs.
func (c *conn) newRequest() (*http.Request, error) {
	h := &c.head
	target := string(h.target)
	authority := string(h.method) == http.MethodConnect && !strings.HasPrefix(target, "/")
	if authority { // CONNECT host:port, parsed as net/http does
		target = "http://" + target
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, badRequest("malformed request target " + quote(h.target))
	}
	if authority {
		u.Scheme = ""
	}
	hdr := make(http.Header, 8)
	for rest := h.fields; ; {
		line, r, _ := nextLine(rest)
		if len(line) == 0 {
			break
		}
		name, value, _ := splitField(line) // parseHead checked them
		k := http.CanonicalHeaderKey(string(name))
		hdr[k] = append(hdr[k], string(value))
		rest = r
	}
	req := &http.Request{
		Method:     string(h.method),
		URL:        u,
		Proto:      "HTTP/1." + string(rune('0'+h.minor)),
		ProtoMajor: 1,
		ProtoMinor: h.minor,
		Header:     hdr,
		Body:       http.NoBody,
		Host:       u.Host,
		RemoteAddr: c.remote,
		RequestURI: string(h.target),
		Close:      h.close,
		TLS:        c.tlsState(),
	}
	switch {
	case h.chunked:
		req.ContentLength, req.TransferEncoding = -1, []string{"chunked"}
	case h.length > 0:
		req.ContentLength = h.length
	}
	if req.Host == "" {
		req.Host = string(h.host)
	}
	return req.WithContext(c.ctx), nil
}

func (c *conn) tlsState() *tls.ConnectionState {
	if c.tls == nil {
		if tc, ok := c.nc.(*tls.Conn); ok {
			st := tc.ConnectionState()
			c.tls = &st
		}
	}
	return c.tls
}

// respond queues the answer in c.w behind earlier ones, or writes it at
// once if its body is large, and reports whether the connection goes on.
func (c *conn) respond(closing, withBody bool) (bool, error) {
	closing = closing || c.srv.closing.Load()
	withBody = withBody && bodyAllowed(c.w.code())
	c.out = c.w.appendHead(c.out, c.srv.date.get(c.srv.clock, c.now), closing)
	var err error
	switch {
	case !withBody:
	case len(c.w.body) < largeBody:
		c.out = append(c.out, c.w.body...)
	default:
		c.refresh(&c.writeDeadline, c.nc.SetWriteDeadline, c.srv.WriteTimeout, c.srv.WriteTimeout/2)
		bufs := net.Buffers{c.out, c.w.body}
		_, err = bufs.WriteTo(c.nc)
		c.out = c.out[:0]
	}
	c.w.Reset()
	return !closing && err == nil, err
}

// refuse answers a request the server cannot take, and the connection
// closes after it.
func (c *conn) refuse(se *statusError) {
	c.w.Reset()
	c.w.SetContentType("text/plain; charset=utf-8")
	c.w.WriteHeader(se.code)
	fmt.Fprintf(&c.w, "%s: %s\n", http.StatusText(se.code), se.msg)
	if _, err := c.respond(true, true); err == nil {
		c.flush()
	}
}

// flush writes the queued answers.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	c.refresh(&c.writeDeadline, c.nc.SetWriteDeadline, c.srv.WriteTimeout, c.srv.WriteTimeout/2)
	_, err := c.nc.Write(c.out)
	if cap(c.out) > maxKeptBody {
		c.out = nil
	}
	c.out = c.out[:0]
	return err
}

// refresh moves a deadline to d after the current request's start if
// less than minLeft is left of it, or more than d (a longer timeout set
// it): a deadline costs a timer update, so most requests leave it where
// it is.
func (c *conn) refresh(dl *time.Duration, set func(time.Time) error, d, minLeft time.Duration) {
	if left := *dl - c.now; left < minLeft || left > d {
		c.setDeadline(dl, set, c.now+d)
	}
}

// setDeadline sets a deadline at monotonic time at on nc. net.Conn takes
// a wall time, which it turns back into time from now at once: at is
// handed over as the wall time read together with the monotonic time
// now, plus what is left until at, so that a wall clock step before the
// call does not move it.
func (c *conn) setDeadline(dl *time.Duration, set func(time.Time) error, at time.Duration) {
	if at != *dl {
		r := c.srv.clock.Now()
		set(r.Wall.Add(at - r.Mono)) // fails only on a closed connection, which the next I/O reports
		*dl = at
	}
}

// body is a request body read from the connection, for Server.Handler.
type body struct {
	c       *conn
	r       io.Reader // the connection's reader, or a chunked reader over it
	left    int64     // bytes of a Content-Length body not read yet
	expect  bool      // "100 Continue" not sent yet
	chunked bool
	eof     bool
	err     error
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.expect {
		b.expect = false
		// Answers queued for earlier pipelined requests go first.
		b.c.out = append(b.c.out, "HTTP/1.1 100 Continue\r\n\r\n"...)
		if b.err = b.c.flush(); b.err != nil {
			return 0, b.err
		}
	}
	if !b.chunked && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	if b.c.br.Buffered() == 0 {
		if b.err = b.c.flush(); b.err != nil {
			return 0, b.err
		}
	}
	n, err := b.r.Read(p)
	if !b.chunked {
		b.left -= int64(n)
		switch {
		case b.left == 0:
			b.eof, err = true, io.EOF
		case err == io.EOF: // the client closed before the whole body
			err = io.ErrUnexpectedEOF
		}
	} else if err == io.EOF {
		b.eof = true
		err = b.readTrailer()
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("h1: reading the request body: %w", err)
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// readTrailer reads the end of a chunked body after its last chunk: the
// empty line alone. Trailer fields are refused (the body fails and the
// connection closes): nothing MIG serves uses them, and their framing
// rules are where HTTP implementations disagree.
func (b *body) readTrailer() error {
	if err := b.c.fill(2); err != nil {
		return fmt.Errorf("h1: reading the end of a chunked body: %w", err)
	}
	if end, _ := b.c.br.Peek(2); string(end) != "\r\n" {
		return errors.New("h1: trailer fields after a chunked body are not supported")
	}
	b.c.br.Discard(2)
	return io.EOF
}

func (b *body) Close() error { return nil }

// finish reads what the handler left of the body, up to maxDrain, and
// reports whether the connection can carry another request.
func (b *body) finish() bool {
	if b.expect {
		return false // the client waits for "100 Continue"; the body may never come
	}
	if !b.eof && b.err == nil {
		io.CopyN(io.Discard, b, maxDrain)
	}
	return b.eof && (b.err == nil || b.err == io.EOF)
}
