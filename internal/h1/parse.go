package h1

import (
	"bytes"
	"errors"
	"math"
	"net/http"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// requestHead is a request line and header, parsed in place: its slices
// point into the connection's read buffer and are valid until the next
// read from it.
type requestHead struct {
	method, target []byte
	minor          int   // HTTP/1.minor: 0 or 1
	length         int64 // Content-Length, -1 if absent
	chunked        bool  // Transfer-Encoding: chunked
	close          bool  // the connection closes after the answer
	expect         bool  // Expect: 100-continue
	host           []byte
	contentType    []byte
	fields         []byte // the header fields, one per line, for the slow path
}

// statusError is a request the server refuses before any handler sees it.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func badRequest(msg string) error { return &statusError{http.StatusBadRequest, msg} }

// errIncomplete means the buffer ends before the header does.
var errIncomplete = errors.New("h1: header incomplete")

// parseHead parses the request line and header at the start of b. It
// returns the header's length including its final empty line, or
// errIncomplete if b does not hold all of it yet, or a *statusError.
//
// It accepts and refuses what net/http's server does (FuzzDifferential
// holds it to that), with deliberate refusals where net/http goes on:
// both Content-Length and Transfer-Encoding, a Transfer-Encoding in an
// HTTP/1.0 request (RFC 9112 §6.1: faulty framing), a header line folded
// onto the one before (RFC 9112 §5.2 lets a server refuse it), a space
// before a field's colon (RFC 9112 §5.1 says to refuse it). Each is a
// shape a proxy in front may frame differently.
func parseHead(b []byte, h *requestHead) (int, error) {
	*h = requestHead{length: -1}
	line, rest, ok := nextLine(b)
	if !ok {
		return 0, errIncomplete
	}
	if err := h.parseRequestLine(line); err != nil {
		return 0, err
	}
	fieldsStart := len(b) - len(rest)
	var (
		keepAlive, seenHost, seenExpect, seenTE bool
		length                                  []byte // the first Content-Length, as sent
	)
	for {
		line, rest, ok = nextLine(rest)
		if !ok {
			return 0, errIncomplete
		}
		if len(line) == 0 {
			break
		}
		name, value, err := splitField(line)
		if err != nil {
			return 0, err
		}
		switch {
		case equalFold(name, "content-length"):
			// Repeats must be the same text, as net/http wants: "5" and
			// "05" may mean different things to a proxy.
			if length != nil {
				if !bytes.Equal(value, length) {
					return 0, badRequest("conflicting Content-Length values")
				}
				break
			}
			n, ok := parseLength(value)
			if !ok {
				return 0, badRequest("bad Content-Length " + quote(value))
			}
			h.length, length = n, value
		case equalFold(name, "transfer-encoding"):
			if !equalFold(value, "chunked") || seenTE {
				return 0, &statusError{http.StatusNotImplemented, "unsupported Transfer-Encoding " + quote(value) + ": only chunked is"}
			}
			seenTE = true
		case equalFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t") // optional whitespace only, not any Unicode space
				if equalFold(tok, "close") {
					h.close = true
				} else if equalFold(tok, "keep-alive") {
					keepAlive = true
				}
			}
		case equalFold(name, "expect"):
			// Only the first counts, as in net/http. Anything but
			// 100-continue is refused below, in HTTP/1.0 too.
			if !seenExpect {
				seenExpect = true
				h.expect = hasToken(value, "100-continue")
				if !h.expect && len(value) > 0 {
					return 0, &statusError{http.StatusExpectationFailed, "unsupported Expect " + quote(value)}
				}
			}
		case equalFold(name, "host"):
			if seenHost {
				return 0, badRequest("more than one Host")
			}
			if !httpguts.ValidHostHeader(string(value)) {
				return 0, badRequest("malformed Host " + quote(value))
			}
			h.host, seenHost = value, true
		case equalFold(name, "content-type"):
			h.contentType = value
		}
	}
	n := len(b) - len(rest)
	h.fields = b[fieldsStart:n]
	h.chunked = seenTE
	switch {
	case seenTE && length != nil:
		// RFC 9112 §6.3 lets a server go on with chunked, but a proxy
		// in front may have framed it by the length: refuse the shape.
		return 0, badRequest("both Content-Length and Transfer-Encoding")
	case h.minor == 1 && !seenHost && string(h.method) != http.MethodConnect:
		return 0, badRequest("missing Host") // RFC 9112 §3.2
	case h.minor == 0:
		h.close = h.close || !keepAlive
		h.expect = false // no "100 Continue" to an HTTP/1.0 client
		if seenTE {
			return 0, badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
	}
	return n, nil
}

func (h *requestHead) parseRequestLine(line []byte) error {
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(method) == 0 || !isToken(method) {
		return badRequest("malformed request line " + quote(line))
	}
	target, proto, ok := bytes.Cut(rest, []byte(" "))
	// CONNECT's target is an authority, which net/http takes empty.
	if !ok || len(target) == 0 && string(method) != http.MethodConnect || !isTarget(target) {
		return badRequest("malformed request line " + quote(line))
	}
	switch {
	case string(proto) == "HTTP/1.1":
		h.minor = 1
	case string(proto) == "HTTP/1.0":
		h.minor = 0
	case len(proto) == len("HTTP/1.x") && string(proto[:7]) == "HTTP/1." && '2' <= proto[7] && proto[7] <= '9':
		// A later 1.x is answered as 1.1 (RFC 9110 §2.5), as net/http does.
		h.minor = 1
	case bytes.HasPrefix(proto, []byte("HTTP/")):
		return &statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol " + quote(proto) + ": HTTP/1.1 only"}
	default:
		return badRequest("malformed request line " + quote(line))
	}
	h.method, h.target = method, target
	return nil
}

// nextLine splits b after its first line, which it returns without its
// end: LF or CRLF (RFC 9112 §2.2 lets a recipient take a bare LF).
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	line = b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, b[i+1:], true
}

// splitField splits a header line into its name and its value without
// surrounding whitespace, refusing what RFC 9112 §5 forbids: whitespace
// before the colon, a line folded onto the previous one, control
// characters in the value.
func splitField(line []byte) (name, value []byte, err error) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(name) == 0 || !isToken(name) {
		return nil, nil, badRequest("malformed header line " + quote(line))
	}
	value = bytes.Trim(value, " \t")
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, badRequest("control character in header " + quote(name))
		}
	}
	return name, value, nil
}

// parseLength parses a Content-Length: decimal digits only, below 2^63.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' || n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasToken reports whether the comma- or space-separated list v holds
// token, ignoring ASCII case.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		i := bytes.IndexAny(v, " ,\t")
		if i < 0 {
			i = len(v)
		}
		if equalFold(v[:i], token) {
			return true
		}
		v = v[min(i+1, len(v)):]
	}
	return false
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isTarget reports whether b may be a request target: no space or
// control character (url.ParseRequestURI judges the rest, as in net/http).
func isTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// equalFold reports whether b equals the lower-case ASCII s, ignoring
// case, without allocating.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// quote quotes b for an error message, cut to a readable length.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
