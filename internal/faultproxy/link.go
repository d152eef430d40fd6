package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// chunkSize is the most one read takes from a connection.
	chunkSize = 32 << 10
	// pipeDepth is how many chunks one direction holds between reading and
	// writing: the bytes "on the wire" when there is a delay. Once full,
	// the proxy stops reading and TCP flow control pushes back on the
	// sender, as a full link would.
	pipeDepth = 16
)

// link is one client connection and, once dialed, its connection to the
// target. Its run goroutine owns two pumps, each of which owns a reader.
type link struct {
	p      *Proxy
	client net.Conn
	done   chan struct{} // closed by close
	once   sync.Once

	// tagger reads the client's requests for its source (WithSourceHeader);
	// nil without one, or once the source is known. Used by the goroutine
	// reading the client alone.
	tagger *tagger

	mu struct {
		sync.Mutex
		target net.Conn // nil until dialed
		closed bool
		source string // the connection's tag, "" until known
	}
}

func newLink(p *Proxy, client net.Conn) *link {
	l := &link{p: p, client: client, done: make(chan struct{})}
	if h := p.opts.sourceHeader; h != "" {
		l.tagger = &tagger{header: h}
	}
	return l
}

// source returns the connection's tag, "" until known.
func (l *link) source() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.source
}

// readFromClient notes bytes the client sent, for its source tag.
func (l *link) readFromClient(b []byte) {
	if l.tagger == nil {
		return
	}
	if src, ok := l.tagger.feed(b); ok {
		l.mu.Lock()
		l.mu.source = src
		l.mu.Unlock()
		l.tagger = nil
	} else if l.tagger.state == gaveUp {
		l.tagger = nil
	}
}

// run dials the target once forwarding is allowed and pumps both ways until
// both directions have ended or the link is closed.
func (l *link) run() {
	defer l.p.wg.Done()
	defer l.p.forget(l)
	defer l.close(false)

	// A connection accepted during a cut waits here, as a SYN retransmits
	// through a partition, and connects once it heals.
	if !l.waitOpen() {
		return
	}
	var d net.Dialer
	// A loopback dial ends at once; the proxy's context only guards
	// against a target that stops accepting with a full backlog.
	target, err := d.DialContext(l.p.ctx, "tcp", l.p.target)
	if err != nil {
		// The target refused: so does the proxy, with a reset.
		l.close(true)
		return
	}
	if !l.setTarget(target) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { l.pump(target, l.client, &l.p.bytesToTarget, l.readFromClient) })
	wg.Go(func() { l.pump(l.client, target, &l.p.bytesToClient, nil) })
	wg.Wait()
}

// setTarget records the dialed connection, or closes it and reports false
// if the link was closed meanwhile.
func (l *link) setTarget(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		_ = c.Close()
		return false
	}
	l.mu.target = c
	return true
}

// close closes both connections, with a TCP reset if asked, and releases
// every goroutine of the link. Only the first call has an effect.
func (l *link) close(reset bool) {
	l.once.Do(func() {
		close(l.done)
		l.mu.Lock()
		l.mu.closed = true
		target := l.mu.target
		l.mu.Unlock()
		for _, c := range []net.Conn{l.client, target} {
			if c == nil {
				continue
			}
			if tc, ok := c.(*net.TCPConn); ok && reset {
				// Linger 0 makes Close send RST instead of FIN.
				_ = tc.SetLinger(0)
			}
			// Closing is all that is left to do; its error changes nothing.
			_ = c.Close()
		}
	})
}

// waitOpen waits until forwarding is allowed and reports true, or reports
// false once the link is closed.
func (l *link) waitOpen() bool {
	for {
		select {
		case <-l.done:
			return false
		default:
		}
		wait, open := l.p.gate(l.source())
		if open {
			return true
		}
		select {
		case <-wait:
		case <-l.done:
			return false
		}
	}
}

// chunk is bytes read from one side, stamped with when they arrived.
type chunk struct {
	data []byte
	at   time.Duration // monotonic
}

// pump copies src to dst through a queue of chunks: a reader stamps each
// chunk on arrival and the writer releases it at arrival + delay, so a delay
// is latency, not a throughput limit. Both halves stop at the gate while the
// proxy (or the link's source) is cut, holding what they have. The reader
// shows each chunk to seen, if not nil, before queueing it, so a chunk
// that tags the link is held when its source is cut.
func (l *link) pump(dst, src net.Conn, count *atomic.Int64, seen func([]byte)) {
	chunks := make(chan chunk, pipeDepth)
	var readErr error // written by the reader before it closes chunks
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		defer close(chunks)
		for l.waitOpen() {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				if seen != nil {
					seen(buf[:n])
				}
				select {
				case chunks <- chunk{data: buf[:n], at: l.p.clk.Mono()}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				readErr = err
				return
			}
		}
	})

	for c := range chunks {
		if !l.waitOpen() {
			return
		}
		if !l.waitDelay(c.at) {
			return
		}
		n, err := dst.Write(c.data)
		count.Add(int64(n))
		if err != nil {
			l.close(true)
			return
		}
	}

	switch {
	case readErr == nil:
		// The link was closed.
	case errors.Is(readErr, io.EOF):
		// The source has finished sending. Pass its FIN on (not during a
		// cut) and leave the other direction running: TCP is full duplex.
		if !l.waitOpen() {
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
			l.close(false)
		}
	default:
		// Reset by the peer, or closed under us: end both sides.
		l.close(true)
	}
}

// waitDelay waits until the current delay has passed since at and
// forwarding is allowed, and reports true; or reports false once the link
// is closed.
func (l *link) waitDelay(at time.Duration) bool {
	for {
		d, changed := l.p.delay()
		wait := at + d - l.p.clk.Mono()
		if wait <= 0 {
			// The proxy may have been cut while the chunk waited.
			return l.waitOpen()
		}
		select {
		case <-l.p.clk.After(wait):
		case <-changed:
		case <-l.done:
			return false
		}
	}
}
