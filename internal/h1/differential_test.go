package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// FuzzDifferential holds h1's request reading to net/http's: the same
// byte stream, given to a connection of h1 and to http.ReadRequest on a
// bufio.Reader, must be cut into the same requests (method, target, body:
// where each request ends, for Content-Length, chunked and pipelined
// bodies) and refused at the same request.
//
// The reference is http.ReadRequest followed by the checks net/http's
// server makes of what it read (a Host in HTTP/1.1, a valid Host, HTTP/1.x
// only, Expect), with empty lines before a request skipped (RFC 9112 §2.2;
// h1 skips any, net/http's server up to four after a POST). Where h1 is
// deliberately stricter it may refuse a request net/http would serve, and
// only then (refusedOnPurpose): both Content-Length and
// Transfer-Encoding, a Transfer-Encoding in HTTP/1.0, a folded header
// line, a space between a field name and its colon (RFC 9112 §5.1 says
// to refuse it; net/http keeps the field under a name nobody looks up,
// so "Content-Length :5" frames nothing), trailer fields after a chunked
// body. It must never serve a
// request net/http refuses, nor frame one differently.
//
// step, the most bytes one read of the connection returns, exercises
// h1's parsing of a header or body that arrives in pieces.
func FuzzDifferential(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a?b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /fast HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcPOST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nde",
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX: y\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"POST / HTTP/1.0\r\nExpect: something\r\nContent-Length: 2\r\n\r\nhi",
		"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 01\r\n\r\nx",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
		"CONNECT h:443 HTTP/1.1\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\nHost: h h\r\n\r\n",
		"GET /\x80 HTTP/1.1\nHost: h\n\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST /fast HTTP/1.0\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(7))
	}
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), // replaced per input
		Fast:    map[string]FastHandler{},
		// Larger than any input: net/http's reader has no such bound.
		MaxHeaderBytes: 1 << 20,
	}
	s.init()
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		got := readByH1(s, in, 1+int(step)%64)
		want := readByNetHTTP(in)
		compareReadings(t, in, got, want)
	})
}

// reading is one request as a server cut it out of the stream.
type reading struct {
	method, target, body string
}

func (r reading) String() string { return fmt.Sprintf("%s %q body %q", r.method, r.target, r.body) }

// outcome is what a server made of a stream: the requests it read whole,
// then how it stopped.
type outcome struct {
	reqs []reading
	// refused: the server refused the request after the last of reqs
	// (h1 answered 4xx or 5xx; net/http's reader or server checks
	// failed). Otherwise the stream ran out, or a body could not be read
	// to its end, or a request asked to close.
	refused bool
	// net/http's side only, per request read, refused or whose body
	// broke: where the request starts in the stream, and whether its
	// chunked body ended with anything but an empty line (trailer
	// fields).
	starts  []int
	trailer []bool
}

// readByH1 serves in on a connection of s that reads at most step bytes
// at a time, and returns the requests its handlers saw and whether it
// refused the one after them.
func readByH1(s *Server, in []byte, step int) outcome {
	var o outcome
	broken := false // a handler could not read its body
	s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			broken = true
			return
		}
		o.reqs = append(o.reqs, reading{r.Method, r.RequestURI, string(b)})
	})
	s.Fast["/fast"] = func(w *ResponseWriter, r *FastRequest) bool {
		o.reqs = append(o.reqs, reading{http.MethodPost, "/fast", string(r.Body)})
		return true
	}
	nc := &streamConn{in: in, step: step}
	c := newConn(s, nc)
	s.trackConn(c, true)
	c.serve()
	// The answers: one per request, a "100 Continue" before some, and
	// a refusal after the last if the server refused one.
	br := bufio.NewReader(bytes.NewReader(nc.out.Bytes()))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode >= 400 {
			o.refused = true
		}
	}
	if broken {
		o.refused = false // the stream ended inside a body
	}
	return o
}

// readByNetHTTP reads in with http.ReadRequest and applies the checks
// net/http's server makes of a request it read.
func readByNetHTTP(in []byte) outcome {
	var o outcome
	src := &countingReader{r: bytes.NewReader(in)}
	// Larger than any input, so that net/http's look-ahead for the end of
	// a trailer sees the whole stream.
	br := bufio.NewReaderSize(src, len(in)+16)
	pos := func() int { return src.n - br.Buffered() }
	for {
		// Skip empty lines before a request line, as h1 does.
		for {
			b, err := br.Peek(1)
			if err != nil || b[0] != '\r' && b[0] != '\n' {
				break
			}
			br.Discard(1)
		}
		if _, err := br.Peek(1); err != nil {
			return o // the stream ends between requests
		}
		start := pos()
		req, err := http.ReadRequest(br)
		if err == nil {
			err = serverChecks(req, in[start:pos()])
		}
		if err != nil {
			o.starts = append(o.starts, start)
			o.trailer = append(o.trailer, false)
			o.refused = !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF)
			return o
		}
		body, err := io.ReadAll(req.Body)
		if err != nil { // a body that cannot be read closes the connection
			o.starts = append(o.starts, start)
			o.trailer = append(o.trailer, false)
			return o
		}
		trailer := len(req.TransferEncoding) > 0 &&
			(len(req.Trailer) > 0 || !bytes.HasSuffix(in[:pos()], []byte("\n\r\n")))
		o.reqs = append(o.reqs, reading{req.Method, req.RequestURI, string(body)})
		o.starts = append(o.starts, start)
		o.trailer = append(o.trailer, trailer)
		if req.Close {
			return o
		}
	}
}

// serverChecks are the checks net/http's server makes of a request
// http.ReadRequest returned, before any handler sees it. head is the
// request line and header as sent: ReadRequest drops the Host field,
// which the server checks.
func serverChecks(req *http.Request, head []byte) error {
	var hosts []string
	for _, l := range strings.Split(string(head), "\n")[1:] {
		if name, value, ok := strings.Cut(strings.TrimSuffix(l, "\r"), ":"); ok && strings.EqualFold(name, "Host") {
			hosts = append(hosts, strings.Trim(value, " \t"))
		}
	}
	switch {
	case req.ProtoMajor != 1:
		return errors.New("HTTP/1.x only") // h1 has no HTTP/2, not even PRI
	case req.ProtoAtLeast(1, 1) && len(hosts) == 0 && req.Method != http.MethodConnect:
		return errors.New("missing Host")
	case len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]):
		return errors.New("malformed Host")
	}
	if e := req.Header.Get("Expect"); e != "" && !tokenIn(e, "100-continue") {
		return errors.New("unsupported Expect")
	}
	return nil
}

// tokenIn reports whether v, a list separated by commas, spaces or tabs,
// holds token in any ASCII case.
func tokenIn(v, token string) bool {
	for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// compareReadings fails t unless got (h1's) matches want (net/http's) as
// FuzzDifferential says.
func compareReadings(t *testing.T, in []byte, got, want outcome) {
	t.Helper()
	for i := 0; ; i++ {
		switch {
		case i < len(got.reqs) && i < len(want.reqs):
			if got.reqs[i] != want.reqs[i] {
				t.Fatalf("request %d of %q: h1 read %v, net/http %v", i, in, got.reqs[i], want.reqs[i])
			}
		case i < len(got.reqs): // net/http stopped here
			t.Fatalf("request %d of %q: h1 read %v, net/http %s", i, in, got.reqs[i], stopped(want))
		case i < len(want.reqs): // h1 stopped here
			if !refusedOnPurpose(in[want.starts[i]:], want.trailer[i]) {
				t.Fatalf("request %d of %q: net/http read %v, h1 %s", i, in, want.reqs[i], stopped(got))
			}
			return
		default: // both stopped here
			if got.refused && !want.refused && (i == len(want.starts) || !refusedOnPurpose(in[want.starts[i]:], want.trailer[i])) {
				t.Fatalf("request %d of %q: h1 refused it, net/http %s", i, in, stopped(want))
			}
			if want.refused && !got.refused && headerComplete(in[want.starts[i]:]) {
				t.Fatalf("request %d of %q: net/http refused it, h1 did not", i, in)
			}
			return
		}
	}
}

func stopped(o outcome) string {
	if o.refused {
		return "refused it"
	}
	return "stopped before it"
}

// headerComplete reports whether b holds a request line and header up to
// the empty line that ends them: only then is h1 bound to judge them.
func headerComplete(b []byte) bool {
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n"))
}

// refusedOnPurpose reports whether the request at the start of b is one
// h1 refuses though net/http serves it: see FuzzDifferential. trailer is
// net/http's word that its chunked body ended with trailer fields.
func refusedOnPurpose(b []byte, trailer bool) bool {
	if trailer {
		return true
	}
	head, _, _ := bytes.Cut(b, []byte("\n\r\n"))
	if h, _, ok := bytes.Cut(b, []byte("\n\n")); ok && len(h) < len(head) {
		head = h
	}
	lines := strings.Split(string(head), "\n")
	http10 := strings.HasSuffix(strings.TrimSuffix(lines[0], "\r"), " HTTP/1.0")
	var te, cl, folded, spaced bool
	for i, l := range lines[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch {
		case i > 0 && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")):
			folded = true
		case strings.Contains(name, " "):
			spaced = true
		case strings.EqualFold(name, "Transfer-Encoding"):
			te = true
		case strings.EqualFold(name, "Content-Length"):
			cl = true
		}
	}
	return folded || spaced || te && (cl || http10)
}

// streamConn is a net.Conn over a fixed input: reads return it at most
// step bytes at a time, then io.EOF, as from a client that sent it and
// half-closed; writes are kept. Deadlines are recorded, not enforced.
// Not safe for concurrent use.
type streamConn struct {
	in             []byte
	step           int
	out            bytes.Buffer
	readDeadlines  []time.Time
	writeDeadlines []time.Time
	reads          int
	onRead         func(n int) // if set, called before the nth read (from 1)
}

func (c *streamConn) Read(p []byte) (int, error) {
	c.reads++
	if c.onRead != nil {
		c.onRead(c.reads)
	}
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.step)], c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *streamConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *streamConn) Close() error                { return nil }
func (c *streamConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *streamConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *streamConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.readDeadlines = append(c.readDeadlines, t)
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadlines = append(c.writeDeadlines, t)
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
