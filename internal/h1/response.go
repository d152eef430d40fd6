package h1

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/migsvc/mig/clock"
)

// ResponseWriter collects one answer whole; the connection sends it, with
// a Content-Length, once the handler returns. It is the http.ResponseWriter
// of both paths. A connection reuses one for all its requests, so a
// handler must not keep it, nor slices it returned, past its return. Not
// safe for concurrent use.
type ResponseWriter struct {
	header      http.Header // made on the first Header call, cleared between requests
	contentType string      // set by SetContentType
	status      int         // 0: not written yet
	body        []byte
}

var _ http.ResponseWriter = (*ResponseWriter)(nil)

// Header implements http.ResponseWriter. Content-Length, Connection,
// Date and Transfer-Encoding set here are ignored: the server writes them.
func (w *ResponseWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

// SetContentType sets the Content-Type without the header map: the fast
// path's way. It wins over a Content-Type set through Header.
func (w *ResponseWriter) SetContentType(ct string) { w.contentType = ct }

// WriteHeader implements http.ResponseWriter. The first status written
// is the answer's; informational ones (1xx) are not sent, as the server
// answers "Expect: 100-continue" itself. A code outside 200..999 becomes
// 500 when the answer is sent.
func (w *ResponseWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

// Write implements http.ResponseWriter; it only appends to the buffered
// body and never fails.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

// AvailableBuffer returns an empty slice with the body buffer's free
// capacity, for an encoder to append to and then pass to Write without a
// copy (bufio.Writer's idiom).
func (w *ResponseWriter) AvailableBuffer() []byte { return w.body[len(w.body):] }

// Status returns the status the answer goes out with: 200 if only a body
// was written, 500 for a status over 999.
func (w *ResponseWriter) Status() int { return w.code() }

// Body returns the body written so far. It is w's buffer: valid until the
// next request.
func (w *ResponseWriter) Body() []byte { return w.body }

// ContentType returns the Content-Type the answer goes out with if it was
// set (the DetectContentType guess for an answer without one is not).
func (w *ResponseWriter) ContentType() string {
	if w.contentType == "" && w.header != nil {
		return w.header.Get("Content-Type")
	}
	return w.contentType
}

// maxKeptBody is the largest body buffer a connection keeps for its next
// request: a rare 2 MB answer should not pin 2 MB per connection.
const maxKeptBody = 64 << 10

// Reset empties w for the next answer, keeping its body buffer (up to
// 64 KB) and header map: the connection calls it between requests, and a
// test calling a FastHandler directly may do the same.
func (w *ResponseWriter) Reset() {
	clear(w.header)
	w.contentType, w.status = "", 0
	if cap(w.body) > maxKeptBody {
		w.body = nil
	}
	w.body = w.body[:0]
}

// code is the status the answer goes out with.
func (w *ResponseWriter) code() int {
	switch {
	case w.status == 0:
		return http.StatusOK
	case w.status > 999:
		return http.StatusInternalServerError
	}
	return w.status
}

// appendHead appends the status line and header of w's answer to dst.
// The Content-Length is the body's even when the body is not sent, as for
// HEAD.
func (w *ResponseWriter) appendHead(dst []byte, date []byte, closing bool) []byte {
	code := w.code()
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(code)...)
	dst = append(dst, "\r\n"...)
	ct := w.ContentType()
	if ct == "" && len(w.body) > 0 {
		ct = http.DetectContentType(w.body) // as net/http does
	}
	if ct != "" {
		dst = appendField(dst, "Content-Type", ct)
	}
	for k, vs := range w.header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Length", "Connection", "Date", "Transfer-Encoding":
			continue
		}
		for _, v := range vs {
			dst = appendField(dst, k, v)
		}
	}
	dst = append(dst, date...)
	if bodyAllowed(code) {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(w.body)), 10)
		dst = append(dst, "\r\n"...)
	}
	if closing {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// bodyAllowed reports whether an answer with the status may carry a body
// and a Content-Length (RFC 9110 §8.6).
func bodyAllowed(code int) bool {
	return code != http.StatusNoContent && code != http.StatusNotModified
}

// appendField appends "name: value\r\n" with any CR or LF in either
// replaced by a space, as net/http does, so that a handler cannot split
// the answer.
func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, sanitize(name)...)
	dst = append(dst, ": "...)
	dst = append(dst, sanitize(value)...)
	return append(dst, "\r\n"...)
}

var newlines = strings.NewReplacer("\r", " ", "\n", " ")

func sanitize(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return newlines.Replace(s)
	}
	return s
}

// dateLine caches the Date header, which changes once a second.
type dateLine struct {
	until time.Duration // monotonic time at which the wall clock's second ends
	line  []byte        // "Date: ...\r\n"
}

type dateCache struct{ p atomic.Pointer[dateLine] }

// get returns the Date header line for monotonic time now of src: the
// wall clock is read once a second, not per request.
func (c *dateCache) get(src clock.Source, now time.Duration) []byte {
	if d := c.p.Load(); d != nil && now < d.until {
		return d.line
	}
	r := src.Now()
	d := &dateLine{until: r.Mono + time.Second - time.Duration(r.Wall.Nanosecond())}
	d.line = append([]byte("Date: "), r.Wall.UTC().AppendFormat(nil, http.TimeFormat)...)
	d.line = append(d.line, "\r\n"...)
	c.p.Store(d)
	return d.line
}
