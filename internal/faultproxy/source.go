package faultproxy

import (
	"bytes"
	"net/textproto"
	"strconv"
	"strings"
)

// Sources: one proxy in front of a server that several clients share
// (an etcd member's peer port, which every other member dials) cannot
// cut one client by address, since on loopback they all come from
// 127.0.0.1. A proxy made with [WithSourceHeader] reads the HTTP/1.1
// requests of each connection instead, and tags the connection with the
// header's value in the first request that carries one; [Proxy.CutSource]
// then cuts the connections of one tag, both ways, as [Proxy.Cut] cuts
// all. A connection keeps its tag: one connection is one client's.
// Connections whose requests never carry the header are not tagged and
// no source cut touches them.

// maxHead bounds the head of one request the proxy reads, and a chunk
// size line: past it the connection is left untagged and no longer read.
const maxHead = 64 << 10

// Option configures [New].
type Option func(*options)

type options struct {
	sourceHeader string
}

// WithSourceHeader makes the proxy tag each client connection with the
// value of the HTTP request header name (like etcd's X-Server-From,
// which names the member that sent a raft message) in the first request
// that carries it, for [Proxy.CutSource].
func WithSourceHeader(name string) Option {
	return func(o *options) { o.sourceHeader = textproto.CanonicalMIMEHeaderKey(name) }
}

// CutSource cuts, both ways and without closing anything, every
// connection tagged src, and connections tagged src later (the request
// that carries the tag is held). Others flow on. Like Cut, a chunk being
// written when it is called still arrives.
func (p *Proxy) CutSource(src string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.mu.cutSources[src]; !ok {
		p.mu.cutSources[src] = make(chan struct{})
	}
}

// RestoreSource ends CutSource(src): held data is delivered in order.
func (p *Proxy) RestoreSource(src string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.mu.cutSources[src]; ok {
		close(ch)
		delete(p.mu.cutSources, src)
	}
}

// Sources returns the tags of the connections open now, each once.
func (p *Proxy) Sources() []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range p.snapshot() {
		if s := l.source(); s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// tagger reads the requests of one connection, as its bytes pass, for the
// first value of one header. Used by one goroutine.
type tagger struct {
	header string // canonical
	state  tagState
	buf    []byte // the head, or the chunk-size line, read so far
	remain int64  // body bytes, or chunk bytes, still to skip
}

type tagState int

const (
	inHead    tagState = iota // reading a request's head
	inBody                    // skipping a Content-Length body
	inSize                    // reading a chunk-size line
	inChunk                   // skipping a chunk and its CRLF
	inTrailer                 // reading the trailer of a chunked body
	gaveUp                    // not HTTP as expected: no longer read
)

// feed reads p, the next bytes the client sent, and returns the header's
// value once a request carries it.
func (t *tagger) feed(p []byte) (string, bool) {
	for len(p) > 0 && t.state != gaveUp {
		switch t.state {
		case inHead, inTrailer:
			from := max(0, len(t.buf)-3)
			if len(t.buf)+len(p) > maxHead {
				t.state = gaveUp
				return "", false
			}
			t.buf = append(t.buf, p...)
			p = nil
			i := bytes.Index(t.buf[from:], []byte("\r\n\r\n"))
			if i < 0 {
				continue
			}
			end := from + i + 4
			head := t.buf[:end]
			p = bytes.Clone(t.buf[end:])
			t.buf = t.buf[:0]
			if t.state == inTrailer {
				t.state = inHead
				continue
			}
			if v, ok := t.head(head); ok {
				return v, true
			}
		case inBody:
			n := min(int64(len(p)), t.remain)
			p = p[n:]
			if t.remain -= n; t.remain == 0 {
				t.state = inHead
			}
		case inSize:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				if len(t.buf)+len(p) > maxHead {
					t.state = gaveUp
					return "", false
				}
				t.buf = append(t.buf, p...)
				p = nil
				continue
			}
			line := string(append(t.buf, p[:i]...))
			p = p[i+1:]
			t.buf = t.buf[:0]
			line, _, _ = strings.Cut(line, ";")
			size, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
			switch {
			case err != nil || size < 0:
				t.state = gaveUp
			case size == 0:
				// The trailer ends with an empty line; the size line's
				// CRLF, read already, starts the search for it.
				t.state = inTrailer
				t.buf = append(t.buf, "\r\n"...)
			default:
				t.remain, t.state = size+2, inChunk // the data and its CRLF
			}
		case inChunk:
			n := min(int64(len(p)), t.remain)
			p = p[n:]
			if t.remain -= n; t.remain == 0 {
				t.state = inSize
			}
		}
	}
	return "", false
}

// head reads one request head: the header's value if it has one, and
// otherwise how its body is framed, for the next state.
func (t *tagger) head(head []byte) (string, bool) {
	lines := strings.Split(string(head), "\r\n")
	if len(lines) < 2 || !strings.Contains(lines[0], " HTTP/1.") {
		t.state = gaveUp
		return "", false
	}
	var length int64
	chunked := false
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)) {
		case t.header:
			if value != "" {
				t.state = gaveUp // tagged: nothing more to read
				return value, true
			}
		case "Content-Length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				t.state = gaveUp
				return "", false
			}
			length = n
		case "Transfer-Encoding":
			chunked = strings.Contains(strings.ToLower(value), "chunked")
		}
	}
	switch {
	case chunked:
		t.state = inSize
	case length > 0:
		t.state, t.remain = inBody, length
	default:
		t.state = inHead
	}
	return "", false
}
