package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

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
// clock.NewRuntime(): a latency needs no suspended time, and a cheap read).
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
		o.src = clock.NewRuntime()
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
	if err := handleChecked(mux, ids, limit, "IDService"); err != nil {
		return nil, err
	}
	var seqSvc *seqService
	if o.seq != nil {
		seqSvc = newSeqService(o.seq, o.seqWait, m, o.fwd)
		seqs := migv1.NewSeqServiceServer(seqSvc, twirp.WithServerHooks(m.hooks(checkBody)))
		if err := handleChecked(mux, seqs, limit, "SeqService"); err != nil {
			return nil, err
		}
		if err := servePeers(mux, o.seq, m, limit); err != nil {
			return nil, err
		}
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

// twirpServer is a generated Twirp service server.
type twirpServer interface {
	http.Handler
	PathPrefix() string
}

// handleChecked routes the Twirp service ts, named service in mig.proto,
// on mux, behind checkRequests.
func handleChecked(mux *http.ServeMux, ts twirpServer, limit bodyLimit, service string) error {
	sd := migv1.File_mig_proto.Services().ByName(protoreflect.Name(service))
	if sd == nil {
		return fmt.Errorf("rpc: service %s is not in mig.proto", service) // a bug of this package
	}
	inputs, err := newJSONInputs(sd, protoregistry.GlobalTypes.FindMessageByName)
	if err != nil {
		return err
	}
	mux.Handle(ts.PathPrefix(), checkRequests(ts, ts.PathPrefix(), limit, inputs))
	return nil
}

// refusalKey marks, in a request's context, the error the request is
// refused with before Twirp decodes it.
type refusalKey struct{}

// checkRequests puts h, a Twirp service served under prefix, behind the
// checks that Twirp's own decoding does not make, and marks in the
// request's context the error a request fails them with, which checkBody
// answers once Twirp has routed the request, so that the refusal is
// counted under its method:
//
//   - the body limit: a body whose declared length the limit refuses is
//     not read; one without a declared length (chunked) is read up to
//     the limit only;
//   - a JSON body is read and checked as checkJSON says (see
//     jsoncheck.go), then handed to Twirp as it was.
//
// Twirp answers everything else: a method other than POST, an unknown
// method, a content type it does not serve, protobuf bodies.
func checkRequests(h http.Handler, prefix string, l bodyLimit, inputs jsonInputs) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(err error) { r = r.WithContext(context.WithValue(r.Context(), refusalKey{}, err)) }
		err := l.admit(r.ContentLength)
		r.Body = http.MaxBytesReader(w, r.Body, l.max)
		method, _ := strings.CutPrefix(r.URL.Path, prefix)
		in := inputs[method]
		switch {
		case err != nil:
			refuse(err)
		case in == nil || r.Method != http.MethodPost || !isJSON(r.Header.Get("Content-Type")):
		default:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				refuse(readError(r.Context(), l, err))
				break
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if err := checkJSON(body, in); err != nil {
				refuse(err)
			}
		}
		h.ServeHTTP(w, r)
	})
}

// isJSON reports whether a Content-Type header says JSON, as Twirp reads
// it: the media type before any parameter, trimmed, in any case.
func isJSON(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/json")
}

// readError is the refusal of a request whose body could not be read.
func readError(ctx context.Context, l bodyLimit, err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &bodyTooLargeError{length: -1, limit: l.max}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return twirp.NewError(twirp.DeadlineExceeded, "the request's deadline passed while its body was read")
	case ctx.Err() != nil:
		return twirp.NewError(twirp.Canceled, "the request was canceled while its body was read")
	}
	return &bodyError{"the request body could not be read: " + clientText(err.Error())}
}

// checkBody refuses a request checkRequests marked.
func checkBody(ctx context.Context) error {
	if err, ok := ctx.Value(refusalKey{}).(error); ok {
		return twirpError(err)
	}
	return nil
}
