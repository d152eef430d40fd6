package rpc

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
)

// codeOK is the code label of a request answered without error.
const codeOK = "ok"

// metrics are the server's Prometheus metrics and the Twirp hooks that
// feed them. Safe for concurrent use.
type metrics struct {
	requests   *prometheus.CounterVec   // service, method, code
	latency    *prometheus.HistogramVec // service, method
	idsIssued  prometheus.Counter
	seqsIssued prometheus.Counter
	src        clock.Source
	log        *slog.Logger

	mu struct {
		sync.Mutex
		methods map[methodKey]*methodMetrics
	}
}

type methodKey struct{ service, method string }

// methodMetrics are one method's metrics, resolved once. Their done is
// where every answered request is counted, whichever path served it:
// Handler's hooks and the fast routes both end there. Safe for
// concurrent use.
type methodMetrics struct {
	m               *metrics
	service, method string
	ok              prometheus.Counter  // requests with code ok: most of them
	latency         prometheus.Observer // of every request
}

// method returns the metrics of a service's method, made on first use.
func (m *metrics) method(service, method string) *methodMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := methodKey{service, method}
	mm := m.mu.methods[k]
	if mm == nil {
		mm = &methodMetrics{
			m: m, service: service, method: method,
			ok:      m.requests.WithLabelValues(service, method, codeOK),
			latency: m.latency.WithLabelValues(service, method),
		}
		m.mu.methods[k] = mm
	}
	return mm
}

// done counts a request answered with code (codeOK or a Twirp code),
// and its latency from start, a monotonic time of m.src.
func (mm *methodMetrics) done(code string, start time.Duration) {
	if code == codeOK {
		mm.ok.Inc()
	} else {
		mm.m.requests.WithLabelValues(mm.service, mm.method, code).Inc()
	}
	mm.latency.Observe((mm.m.src.Mono() - start).Seconds())
}

func newMetrics(reg *prometheus.Registry, src clock.Source, log *slog.Logger) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mig",
			Subsystem: "rpc",
			Name:      "requests_total",
			Help:      "Twirp requests answered, by service, method and Twirp code (ok for success).",
		}, []string{"service", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mig",
			Subsystem: "rpc",
			Name:      "request_duration_seconds",
			Help:      "Time from a Twirp request's arrival to the end of its answer, by service and method.",
			// From 50 µs, under an ID's round trip on loopback
			// (docs/benchmarks.md), to about 1.6 s (a client's default
			// timeout is 2 s).
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}, []string{"service", "method"}),
		idsIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mig",
			Name:      "ids_issued_total",
			Help:      "Message IDs handed out in NextIDs answers (an answer lost on the way still counts).",
		}),
		seqsIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mig",
			Name:      "seqs_issued_total",
			Help:      "Per-user sequences handed out in NextSeq and NextSeqs answers (an answer lost on the way still counts).",
		}),
		src: src,
		log: log,
	}
	m.mu.methods = make(map[methodKey]*methodMetrics)
	for _, c := range []prometheus.Collector{
		m.requests, m.latency, m.idsIssued, m.seqsIssued,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) issued(n int) { m.idsIssued.Add(float64(n)) }

// logInternal logs an internal error, which is a bug of the server's:
// other codes are the client's or the cluster's business. Both paths
// call it for every error they answer.
func (m *metrics) logInternal(method string, twerr twirp.Error) {
	if twerr.Code() == twirp.Internal {
		m.log.Error("internal error answering a request", "method", method, "err", twerr)
	}
}

// call is the per-request state the hooks share through the context: one
// allocation per request rather than a context value per hook.
type call struct {
	start time.Duration // monotonic
	code  string
}

type callKey struct{}

// hooks returns the Twirp server hooks that record requests, through
// methodMetrics.done as the fast routes do. before runs when a request
// has been routed and may refuse it; the refusal goes through Twirp's
// error path, so it is counted like any other error.
func (m *metrics) hooks(before func(context.Context) error) *twirp.ServerHooks {
	return &twirp.ServerHooks{
		RequestReceived: func(ctx context.Context) (context.Context, error) {
			return context.WithValue(ctx, callKey{}, &call{start: m.src.Mono(), code: codeOK}), nil
		},
		RequestRouted: func(ctx context.Context) (context.Context, error) {
			return ctx, before(ctx)
		},
		Error: func(ctx context.Context, twerr twirp.Error) context.Context {
			if c, ok := ctx.Value(callKey{}).(*call); ok {
				c.code = string(twerr.Code())
			}
			method, _ := twirp.MethodName(ctx)
			m.logInternal(method, twerr)
			return ctx
		},
		ResponseSent: func(ctx context.Context) {
			c, ok := ctx.Value(callKey{}).(*call)
			if !ok {
				return
			}
			// Method and service are known only for routed requests; the
			// label values stay a small fixed set whatever paths clients
			// send.
			service, _ := twirp.ServiceName(ctx)
			method, ok := twirp.MethodName(ctx)
			if !ok {
				method = "unknown"
			}
			m.method(service, method).done(c.code, c.start)
		},
	}
}
