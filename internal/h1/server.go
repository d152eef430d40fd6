package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migsvc/mig/clock"
)

// Defaults of the Server fields left zero.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 16 << 10
)

// ErrServerClosed is what Serve returns once Shutdown or Close was called.
var ErrServerClosed = errors.New("h1: server closed")

// FastRequest is a POST a FastHandler may answer. The connection reuses
// it, and its body and content type point into the connection's buffer:
// all of it but what Local points to is valid only until the handler
// returns.
type FastRequest struct {
	// Context is done when the connection or the server is closed.
	Context     context.Context
	ContentType []byte
	Body        []byte
	// Local is the connection's own slot, nil at its first request: a
	// handler may leave there what the next request on the same
	// connection can reuse (decoded messages, buffers), which unlike a
	// sync.Pool costs nothing to reach and is never dropped. Every fast
	// handler of the server shares it. It is nil in a FastRequest not
	// made by a connection.
	Local *any
}

// FastHandler answers a POST to the path it is registered for, writing to
// w, and returns true; or it writes nothing and returns false, and the
// request goes to Server.Handler like any other. It runs on the
// connection's goroutine and must be safe for concurrent use across
// connections.
type FastHandler func(w *ResponseWriter, r *FastRequest) bool

// Server serves HTTP/1.1 on listeners. Set its fields before the first
// call to Serve and do not change them afterwards; zero fields take the
// defaults above. Its methods are safe for concurrent use. Every
// connection is served by a goroutine of its own, which Shutdown and
// Close end.
type Server struct {
	// Handler answers every request no FastHandler took. Required.
	Handler http.Handler
	// Fast maps a request path (exactly, without query) to the handler
	// tried first for a POST to it.
	Fast map[string]FastHandler
	// ReadHeaderTimeout bounds the time from a request's first byte to the
	// end of its header; ReadTimeout to the end of its body. WriteTimeout
	// bounds the writing of an answer, IdleTimeout the wait for the next
	// request on a kept-alive connection (the first request of a new
	// connection has ReadHeaderTimeout from the accept). Deadlines are
	// moved forward only once part of their time has gone (a deadline
	// costs a timer update): an idle connection is closed after between
	// 90% and all of IdleTimeout, and an answer may take between half and
	// all of WriteTimeout.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and header; larger is refused
	// with 431.
	MaxHeaderBytes int
	// Log receives handler panics and accept errors; nil discards them.
	Log *slog.Logger
	// Clock times the connections (nil: Go's monotonic clock, clock.NewRuntime). Their
	// deadlines are kept in its monotonic time, so that a step of the
	// wall clock neither moves a deadline nor makes one look passed; the
	// wall clock is read only to hand a deadline to net.Conn, and for the
	// Date header.
	Clock clock.Source

	initOnce sync.Once
	clock    clock.Source // Clock or the host's
	closing  atomic.Bool
	base     context.Context    // every connection's context derives from it
	cancel   context.CancelFunc // cancels base: Close
	date     dateCache
	mu       struct {
		sync.Mutex
		listeners map[net.Listener]struct{}
		conns     map[*conn]struct{}
		drained   chan struct{} // closed once closing and no connection is left
		isDrained bool
	}
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.clock = s.Clock
		if s.clock == nil {
			s.clock = clock.NewRuntime()
		}
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		setDefault(&s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
		setDefault(&s.ReadTimeout, DefaultReadTimeout)
		setDefault(&s.WriteTimeout, DefaultWriteTimeout)
		setDefault(&s.IdleTimeout, DefaultIdleTimeout)
		setDefault(&s.MaxHeaderBytes, DefaultMaxHeaderBytes)
		// Serve's callers own the server's lifetime, not a request's:
		// Close cancels it.
		s.base, s.cancel = context.WithCancel(context.Background())
		s.mu.listeners = make(map[net.Listener]struct{})
		s.mu.conns = make(map[*conn]struct{})
		s.mu.drained = make(chan struct{})
	})
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Serve accepts connections on ln and serves each on a goroutine of its
// own, until Shutdown or Close closes ln: it then returns
// ErrServerClosed. Other errors of Accept are logged and retried after a
// pause, up to a second, as net/http does; the error that closed ln
// otherwise is returned. Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if s.Handler == nil {
		return errors.New("h1: Server.Handler is nil")
	}
	if !s.track(ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.track(ln, false)
	defer ln.Close()
	var pause time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE, ECONNABORTED and the like pass; back off meanwhile.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.Log.Warn("accepting a connection failed; retrying", "err", err, "pause", pause)
			select {
			case <-s.clock.After(pause):
			case <-s.base.Done():
				return ErrServerClosed
			}
			continue
		}
		pause = 0
		c := newConn(s, nc)
		if !s.trackConn(c, true) {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// Shutdown stops the server gracefully: it closes the listeners, closes
// every connection waiting for a request, lets each request in flight
// finish and answer (with "Connection: close"), and returns once no
// connection is left, or with ctx's error once ctx is done (call Close
// then). A request whose first bytes arrive as Shutdown starts may be
// closed unanswered, as with net/http: clients see the connection close
// before any answer.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.closing.Store(true)
	s.mu.Lock()
	for ln := range s.mu.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	s.drainedLocked()
	drained := s.mu.drained
	s.mu.Unlock()
	for _, c := range conns {
		c.wakeIfIdle()
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, and cancels
// the context of every request in flight. It does not wait for handlers
// to return.
func (s *Server) Close() error {
	s.init()
	s.closing.Store(true)
	s.mu.Lock()
	for ln := range s.mu.listeners {
		ln.Close()
	}
	for c := range s.mu.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	// Only now, or a handler woken by its context could have its answer
	// written before its connection closed.
	s.cancel()
	return nil
}

// track adds or removes a listener; it refuses to add once closing.
func (s *Server) track(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.mu.listeners, ln)
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.mu.listeners[ln] = struct{}{}
	return true
}

// trackConn adds or removes a connection; it refuses to add once closing.
func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.mu.conns, c)
		s.drainedLocked()
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.mu.conns[c] = struct{}{}
	return true
}

func (s *Server) drainedLocked() {
	if s.closing.Load() && len(s.mu.conns) == 0 && !s.mu.isDrained {
		s.mu.isDrained = true
		close(s.mu.drained)
	}
}
