package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migsvc/mig/clock"
)

// Errors returned by [New], wrapped with the address; test with errors.Is.
var (
	// ErrTarget means the target is not a "host:port" address.
	ErrTarget = errors.New("faultproxy: bad target address")
	// ErrNotLoopback means the target's host is not a loopback IP address:
	// the proxy is a test tool and never reaches beyond the host.
	ErrNotLoopback = errors.New("faultproxy: target is not a loopback IP address")
)

// acceptRetry is how long the accept loop waits after a failed Accept that
// is not the listener closing (out of file descriptors, say), rather than
// spinning.
const acceptRetry = 10 * time.Millisecond

// Proxy forwards TCP connections from its own loopback address to a target
// and injects faults on command. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	opts   options
	ln     net.Listener
	clk    clock.Source
	done   chan struct{} // closed by Close
	// ctx is the proxy's lifetime, for dials, cancelled by Close. New takes
	// no context because a proxy lives until Close, not for one call.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the accept loop and one goroutine per link, which owns the
	// link's own goroutines and waits for them.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		// open is closed while bytes flow; during a cut it is a fresh,
		// open channel that Restore closes, releasing every paused pump.
		open  chan struct{}
		cut   bool
		delay time.Duration
		// delayChanged is closed and replaced by Delay, so that chunks
		// waiting out the old delay wait out the new one instead.
		delayChanged chan struct{}
		// cutSources holds, for each source cut (CutSource), a channel
		// that RestoreSource closes.
		cutSources map[string]chan struct{}
		links      map[*link]struct{}
		closed     bool
	}

	accepted      atomic.Int64
	bytesToTarget atomic.Int64
	bytesToClient atomic.Int64
	closeOnce     sync.Once
}

// Stats counts what a proxy has done since New.
type Stats struct {
	// Accepted is the number of connections accepted.
	Accepted int64
	// Open is the number of connections not yet closed.
	Open int
	// BytesToTarget and BytesToClient are the bytes written to the target
	// and back to clients.
	BytesToTarget int64
	BytesToClient int64
}

// New starts a proxy on 127.0.0.1 at a free port, forwarding to target, a
// loopback "ip:port" that need not be listening yet. Close it when done.
//
// Errors: [ErrTarget], [ErrNotLoopback], or the listener's error.
func New(target string, opts ...Option) (*Proxy, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrTarget, target, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("%w: %q: bad port", ErrTarget, target)
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%w: %q", ErrNotLoopback, target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target,
		opts:   o,
		ln:     ln,
		clk:    clock.NewReal(),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	p.mu.open = make(chan struct{})
	close(p.mu.open)
	p.mu.links = make(map[*link]struct{})
	p.mu.cutSources = make(map[string]chan struct{})
	p.mu.delayChanged = make(chan struct{})
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the proxy's "127.0.0.1:port", for clients to dial instead of
// the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Cut stops all forwarding, both ways, without closing anything: open
// connections go silent with their data held, and connections accepted
// meanwhile wait before dialing the target. A chunk already being written
// when Cut is called still arrives. Cutting a cut proxy does nothing.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.mu.cut {
		p.mu.cut = true
		p.mu.open = make(chan struct{})
	}
}

// Restore ends a cut: held data is delivered in order, paused connections
// go on, and waiting new connections dial the target. Restoring a proxy
// that is not cut does nothing.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.cut {
		p.mu.cut = false
		close(p.mu.open)
	}
}

// Delay makes every chunk of bytes (one read of up to 32 KiB) leave the
// proxy no earlier than d after it arrived, in both directions; chunks in
// flight together are delayed together, as on a long link, not one after
// the other. Zero or negative removes the delay. A new delay applies to
// chunks already waiting, too.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.delay = max(d, 0)
	close(p.mu.delayChanged)
	p.mu.delayChanged = make(chan struct{})
}

// Reset closes every open connection, both sides, with a TCP reset. Later
// connections are forwarded as usual (unless the proxy is cut).
func (p *Proxy) Reset() {
	for _, l := range p.snapshot() {
		l.close(true)
	}
}

// Close stops the listener, closes every connection and returns once every
// goroutine of the proxy has ended. It is idempotent.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.mu.closed = true
		p.mu.Unlock()
		close(p.done)
		p.cancel()
		// The error is of no use: the listener is gone either way.
		_ = p.ln.Close()
		for _, l := range p.snapshot() {
			l.close(false)
		}
		p.wg.Wait()
	})
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	open := len(p.mu.links)
	p.mu.Unlock()
	return Stats{
		Accepted:      p.accepted.Load(),
		Open:          open,
		BytesToTarget: p.bytesToTarget.Load(),
		BytesToClient: p.bytesToClient.Load(),
	}
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-p.clk.After(acceptRetry):
				continue
			case <-p.done:
				return
			}
		}
		p.accepted.Add(1)
		l := newLink(p, c)
		p.mu.Lock()
		if p.mu.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		p.mu.links[l] = struct{}{}
		// Added under mu while not closed, so Close's Wait sees it.
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run()
	}
}

func (p *Proxy) snapshot() []*link {
	p.mu.Lock()
	defer p.mu.Unlock()
	links := make([]*link, 0, len(p.mu.links))
	for l := range p.mu.links {
		links = append(links, l)
	}
	return links
}

func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.mu.links, l)
}

// gate returns a channel that is closed while forwarding is allowed for a
// connection tagged src (or untagged, src ""): once it is closed, look
// again, since both the proxy and the source may have been cut.
func (p *Proxy) gate(src string) (wait <-chan struct{}, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.cut {
		return p.mu.open, false
	}
	if ch, ok := p.mu.cutSources[src]; ok && src != "" {
		return ch, false
	}
	return nil, true
}

// delay returns the current delay and a channel closed when it changes.
func (p *Proxy) delay() (time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.delay, p.mu.delayChanged
}
