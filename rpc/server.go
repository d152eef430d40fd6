package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/rpc/migv1"
)

// DefaultMaxBodyBytes is the largest request body the server reads by
// default. Every MIG request is a few bytes; the limit only stops a client
// from making the server buffer megabytes.
const DefaultMaxBodyBytes = 64 << 10

// Server serves IDService (and SeqService, given WithSeq) over Twirp, with
// /metrics, /healthz and /readyz beside it, all from one http.Handler. It starts no goroutines: the
// caller runs the http.Server. Safe for concurrent use.
type Server struct {
	reg     *prometheus.Registry
	ready   []readiness
	metrics *metrics
	handler http.Handler
	fast    map[string]h1.FastHandler
}

// ServerOption configures a Server in NewServer. Options are plain
// functions, applied once; one may be passed to any number of NewServer
// calls, concurrently.
type ServerOption func(*serverOptions)

type serverOptions struct {
	maxBody int64
	ready   []readiness
	src     clock.Source
	log     *slog.Logger
	seq     SeqAllocator // nil: no SeqService
	seqWait time.Duration
	fwd     *forwarder // nil: no forwarding
	errs    []error    // from the options, reported by NewServer
}

// WithMaxBodyBytes sets the largest request body the server accepts (n >
// 0; default DefaultMaxBodyBytes). A larger body is answered with
// malformed, unread.
func WithMaxBodyBytes(n int64) ServerOption {
	return func(o *serverOptions) {
		if n <= 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: max body bytes %d is not positive", ErrConfig, n))
			return
		}
		o.maxBody = n
	}
}

// WithReadiness adds a check to /readyz, which answers 200 only while
// every check returns nil. Checks run in the order they were added, on
// every /readyz request, so they must be quick and must not block: read
// state that is kept up to date elsewhere. Names must be unique and not
// empty; the /readyz body names every check that failed and its error.
func WithReadiness(name string, check func() error) ServerOption {
	return func(o *serverOptions) {
		switch {
		case name == "":
			o.errs = append(o.errs, fmt.Errorf("%w: readiness check with an empty name", ErrConfig))
		case check == nil:
			o.errs = append(o.errs, fmt.Errorf("%w: readiness check %q is nil", ErrConfig, name))
		default:
			o.ready = append(o.ready, readiness{name: name, check: check})
		}
	}
}

// WithClock sets the clock request latency is measured with (default
// clock.NewReal()).
func WithClock(src clock.Source) ServerOption {
	return func(o *serverOptions) {
		if src == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: nil clock", ErrConfig))
			return
		}
		o.src = src
	}
}

// WithLogger sets where the server logs internal errors (default: nowhere).
func WithLogger(l *slog.Logger) ServerOption {
	return func(o *serverOptions) {
		if l == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: nil logger", ErrConfig))
			return
		}
		o.log = l
	}
}

// NewServer returns a server that issues IDs from issuer.
//
// Every error it returns wraps ErrConfig: a nil issuer, a non-positive
// WithMaxBodyBytes, a nil clock or logger, a readiness check that is nil,
// has an empty name or repeats a name.
func NewServer(issuer IDIssuer, opts ...ServerOption) (*Server, error) {
	o := serverOptions{maxBody: DefaultMaxBodyBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if issuer == nil {
		o.errs = append(o.errs, fmt.Errorf("%w: nil IDIssuer", ErrConfig))
	}
	seen := make(map[string]bool, len(o.ready))
	for _, r := range o.ready {
		if seen[r.name] {
			o.errs = append(o.errs, fmt.Errorf("%w: readiness check %q added twice", ErrConfig, r.name))
		}
		seen[r.name] = true
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, err
	}
	if o.src == nil {
		o.src = clock.NewReal()
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}

	s := &Server{reg: prometheus.NewRegistry(), ready: o.ready}
	m, err := newMetrics(s.reg, o.src, o.log)
	if err != nil {
		return nil, err // a fresh registry refuses nothing
	}
	s.metrics = m
	if o.fwd != nil {
		if err := o.fwd.register(s.reg); err != nil {
			return nil, err
		}
	}
	idSvc := &idService{issuer: issuer, metrics: m}
	ids := migv1.NewIDServiceServer(idSvc, twirp.WithServerHooks(m.hooks(checkBody)))

	limit := bodyLimit{max: o.maxBody}
	mux := http.NewServeMux()
	mux.Handle(ids.PathPrefix(), limit.handler(ids))
	var seqSvc *seqService
	if o.seq != nil {
		seqSvc = &seqService{alloc: o.seq, wait: o.seqWait, metrics: m, fwd: o.fwd}
		seqs := migv1.NewSeqServiceServer(seqSvc, twirp.WithServerHooks(m.hooks(checkBody)))
		mux.Handle(seqs.PathPrefix(), limit.handler(seqs))
	}
	s.fast = s.fastRoutes(idSvc, seqSvc, limit)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("GET /healthz", serveHealthz)
	mux.HandleFunc("GET /readyz", s.serveReadyz)
	s.handler = mux
	return s, nil
}

// Handler returns the handler of every route: the Twirp services under
// /twirp/, /metrics, /healthz and /readyz.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the registry /metrics serves. The caller registers its
// own collectors on it (worker ID held, lease and watermark headroom,
// clock slew, NTP offset, ...). It is not prometheus.DefaultRegisterer,
// which the embedded etcd server fills with its own metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// bodyLimit is the one rule for request bodies, whichever path serves
// them: at most max bytes. A larger body is refused with malformed,
// unread, and counted under its method. A plain value.
type bodyLimit struct{ max int64 }

// admit returns nil for a body of length bytes (-1: not declared), or
// the error it is refused with.
func (l bodyLimit) admit(length int64) error {
	if length > l.max {
		return &bodyTooLargeError{length: length, limit: l.max}
	}
	return nil
}

type bodyLimitKey struct{}

// handler applies the limit to h, a Twirp service. A body whose declared
// length admit refuses is marked in the context and refused by
// checkBody once Twirp has routed it, so the refusal is counted under
// its method; a body without a declared length (chunked) may be read up
// to the limit only, and Twirp answers malformed once it runs past it.
func (l bodyLimit) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := l.admit(r.ContentLength); err != nil {
			r = r.WithContext(context.WithValue(r.Context(), bodyLimitKey{}, err))
		}
		r.Body = http.MaxBytesReader(w, r.Body, l.max)
		h.ServeHTTP(w, r)
	})
}

// checkBody refuses a request bodyLimit.handler marked as too large.
func checkBody(ctx context.Context) error {
	if err, ok := ctx.Value(bodyLimitKey{}).(error); ok {
		return twirpError(err)
	}
	return nil
}
