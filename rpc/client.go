package rpc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade/route"
)

// DefaultTimeout bounds each attempt of a Client call by default.
const DefaultTimeout = 2 * time.Second

// Client calls IDService and SeqService on a list of endpoints (MIG workers, or load
// balancers in front of them) and fails over between them.
//
// Each call makes at most one pass over the endpoints. It starts at the
// endpoint that last answered (at first, a random one, so that many clients
// spread over the endpoints), and moves to the next one, in list order,
// when an attempt fails in a way another endpoint may not:
//
//   - the server answered unavailable (it did nothing: no worker ID held,
//     watermark reached, clock unsafe, ...);
//   - no answer came from a MIG server: the connection could not be made,
//     it broke, the attempt's timeout passed, or a proxy in front of the
//     server answered with an HTTP error of its own (502, 503, ...).
//     IDService's calls are safe to repeat even when the request may have
//     reached the server (see the package documentation), so this includes
//     timeouts after sending and connections reset mid-answer.
//
// Any other answer (invalid_argument, internal, ...) is returned at once:
// another worker would say the same. When every endpoint fails the error is
// unavailable, and wraps each endpoint's error.
//
// Safe for concurrent use.
type Client struct {
	endpoints []endpoint
	timeout   time.Duration
	http      *http.Client
	// next is the endpoint a call tries first: the last one that answered.
	// Staying with one worker keeps this client's IDs increasing while it
	// is healthy, and keeps connections warm.
	next atomic.Uint32

	// routing is the newest sequence routing table seen in an answer.
	routing atomic.Pointer[route.Table]
	json    bool
	scheme  string // of the configured endpoints, for the nodes a table names
	src     clock.Source
	mu      struct {
		sync.Mutex
		byAddr map[string]*endpoint // nodes reached through the table
	}
}

type endpoint struct {
	url  string // base URL, with scheme
	ids  migv1.IDService
	seqs migv1.SeqService
}

// ClientOption configures a Client in NewClient. Options are plain
// functions, applied once; one may be passed to any number of NewClient
// calls, concurrently.
type ClientOption func(*clientOptions)

type clientOptions struct {
	json    bool
	timeout time.Duration
	http    *http.Client
	errs    []error
}

// WithJSON makes the client speak JSON instead of protobuf: slower and
// larger, but readable on the wire.
func WithJSON() ClientOption { return func(o *clientOptions) { o.json = true } }

// WithTimeout bounds each attempt (d > 0; default DefaultTimeout). A call
// makes at most one attempt per endpoint, so it may take up to
// len(endpoints)*d unless ctx is done sooner.
func WithTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: timeout %v is not positive", ErrConfig, d))
			return
		}
		o.timeout = d
	}
}

// WithHTTPClient makes the client send its requests through c, for TLS
// settings or a transport of the caller's. By default the client uses a
// transport of its own: over http://, HTTP/1.1 on the caller's goroutine
// with up to 64 idle connections per endpoint, at about two thirds of
// http.Transport's CPU per call (see transport); over https://,
// http.Transport with the same 64 (http.DefaultTransport keeps 2, and
// concurrent callers would open a new connection for nearly every call).
// c should have no Timeout of its own shorter than WithTimeout's;
// redirects are never followed.
func WithHTTPClient(c *http.Client) ClientOption {
	return func(o *clientOptions) {
		if c == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: nil http.Client", ErrConfig))
			return
		}
		o.http = c
	}
}

// NewClient returns a client of the given endpoints, each "host:port" or
// a base URL such as "https://mig-1.tokyo:8080" (http:// is assumed
// without a scheme).
//
// Every error it returns wraps ErrConfig: no endpoints, an endpoint that
// is not an http or https URL with a host, the same endpoint twice, a
// non-positive WithTimeout or a nil WithHTTPClient.
func NewClient(endpoints []string, opts ...ClientOption) (*Client, error) {
	o := clientOptions{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if len(endpoints) == 0 {
		o.errs = append(o.errs, fmt.Errorf("%w: no endpoints", ErrConfig))
	}
	urls := make([]string, 0, len(endpoints))
	seen := make(map[string]bool, len(endpoints))
	for _, e := range endpoints {
		u, err := parseEndpoint(e)
		if err != nil {
			o.errs = append(o.errs, err)
			continue
		}
		if seen[u] {
			o.errs = append(o.errs, fmt.Errorf("%w: endpoint %s listed twice", ErrConfig, u))
			continue
		}
		seen[u] = true
		urls = append(urls, u)
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, err
	}
	src := clock.NewReal()
	if o.http == nil {
		o.http = &http.Client{Transport: newDefaultTransport(src)}
	}
	c := &Client{timeout: o.timeout, http: o.http, endpoints: make([]endpoint, len(urls)), json: o.json, src: src}
	c.scheme, _, _ = strings.Cut(urls[0], "://")
	c.mu.byAddr = map[string]*endpoint{}
	for i, u := range urls {
		c.endpoints[i] = c.newEndpoint(u)
	}
	c.next.Store(uint32(rand.IntN(len(urls))))
	return c, nil
}

// newEndpoint returns the service clients of the endpoint at base URL u.
func (c *Client) newEndpoint(u string) endpoint {
	if c.json {
		return endpoint{url: u, ids: migv1.NewIDServiceJSONClient(u, c.http), seqs: migv1.NewSeqServiceJSONClient(u, c.http)}
	}
	return endpoint{url: u, ids: migv1.NewIDServiceProtobufClient(u, c.http), seqs: migv1.NewSeqServiceProtobufClient(u, c.http)}
}

func parseEndpoint(e string) (string, error) {
	s := strings.TrimSpace(e)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: endpoint %q is not host:port or an http(s) base URL", ErrConfig, e)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func newTransport() *http.Transport {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	t.MaxIdleConns = 0 // no limit across endpoints
	t.MaxIdleConnsPerHost = 64
	return t
}

// CloseIdleConnections closes the client's idle connections. The client
// stays usable; it opens new connections as calls need them.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Origin says where a NextIDs answer came from. A plain value, safe for
// concurrent use.
type Origin struct {
	Endpoint   string // base URL of the endpoint that answered
	WorkerID   uint32 // the worker ID in every ID of the answer
	Datacenter string // the datacenter of that worker
}

// NextIDs returns count new IDs (1..MaxCount), strictly increasing, all
// from one worker, and where they came from.
//
// Safe to repeat, and repeated on the next endpoint when an answer is lost:
// the lost answer's IDs are skipped, never handed out again (see the
// package documentation). A count out of range is refused without a
// request, with the invalid_argument error the server would give. An
// answer with the wrong number of IDs, or IDs not strictly increasing or
// not below 2^63, is an error wrapping ErrBadAnswer.
func (c *Client) NextIDs(ctx context.Context, count int) ([]mig.ID, Origin, error) {
	if err := checkCount(int64(count)); err != nil {
		return nil, Origin{}, twirpError(err)
	}
	n := int32(count)
	var resp *migv1.NextIDsResponse
	k, err := c.do(ctx, "NextIDs", func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.ids.NextIDs(ctx, &migv1.NextIDsRequest{Count: &n})
		return err
	})
	if err != nil {
		return nil, Origin{}, err
	}
	origin := Origin{Endpoint: c.endpoints[k].url, WorkerID: resp.WorkerId, Datacenter: resp.Datacenter}
	if len(resp.Ids) != count {
		return nil, origin, fmt.Errorf("%w: %s: %d IDs for a count of %d", ErrBadAnswer, origin.Endpoint, len(resp.Ids), count)
	}
	ids := make([]mig.ID, len(resp.Ids))
	for i, v := range resp.Ids {
		// HAZARD: this check is what stops a broken or confused server from
		// giving the caller an ID twice within one answer, or one that
		// cannot be an ID at all.
		if v>>63 != 0 || (i > 0 && v <= resp.Ids[i-1]) {
			return nil, origin, fmt.Errorf("%w: %s: ID %d at index %d is not below 2^63 and above the ID before it", ErrBadAnswer, origin.Endpoint, v, i)
		}
		ids[i] = mig.ID(v)
	}
	return ids, origin, nil
}

// Decoded is an ID split into its parts. A plain value, safe for
// concurrent use.
type Decoded struct {
	ID   mig.ID
	Time time.Time // the start of the ID's tick, in UTC
	mig.Parts
}

// Decode asks a server to split id into its parts in the service's
// layout. It reads no state on the server, so it is safe to repeat and is
// repeated like NextIDs. An id with the sign bit set is invalid_argument.
func (c *Client) Decode(ctx context.Context, id mig.ID) (Decoded, error) {
	var resp *migv1.DecodeResponse
	k, err := c.do(ctx, "Decode", func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.ids.Decode(ctx, &migv1.DecodeRequest{Id: uint64(id)})
		return err
	})
	if err != nil {
		return Decoded{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, resp.Time)
	if err != nil || resp.Id != uint64(id) {
		return Decoded{}, fmt.Errorf("%w: %s: decoding %d gave ID %d, time %q", ErrBadAnswer, c.endpoints[k].url, id, resp.Id, resp.Time)
	}
	return Decoded{ID: id, Time: t.UTC(), Parts: mig.Parts{Tick: resp.Tick, Worker: resp.Worker, Seq: resp.Seq}}, nil
}

// do runs attempt against the endpoints, one pass at most, starting at
// c.next, and returns the index of the endpoint that answered. attempt
// must be safe to repeat: do repeats it on the next endpoint even when the
// request may have reached a server whose answer was lost.
//
// HAZARD: attempt must send a new request each time and keep nothing from
// a failed attempt. Repeating NextIDs is safe only because a lost answer's
// IDs are never used; replaying an answer would hand its IDs out twice.
func (c *Client) do(ctx context.Context, method string, attempt func(context.Context, *endpoint) error) (int, error) {
	n := len(c.endpoints)
	first := int(c.next.Load())
	var errs []error
	for i := range n {
		k := (first + i) % n
		ep := &c.endpoints[k]
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		err := attempt(actx, ep)
		cancel()
		if err == nil {
			c.next.Store(uint32(k))
			return k, nil
		}
		err = fmt.Errorf("%s %s: %w", method, ep.url, err)
		if ctx.Err() != nil {
			return -1, err // the caller gave up; its context says why
		}
		answered, failover := classify(err, true)
		if !failover {
			if answered {
				c.next.Store(uint32(k)) // it answered: it is up
			}
			return -1, err
		}
		errs = append(errs, err)
	}
	return -1, allFailedError(method, errs)
}

// classify tells whether err, a failed attempt, carried an answer from a
// server, and whether the call may go to another endpoint. repeatable says
// whether the call is safe to repeat after its request may have reached a
// server.
//
// The Twirp client returns what a server answered as a bare twirp.Error,
// and wraps every failure to get an answer (connection, timeout,
// unreadable body) around its cause; that is how the two are told apart.
// An HTTP error from a proxy is not an answer from a MIG server: even its
// 503 does not prove the request went nowhere (a 504 may come after the
// server got it).
func classify(err error, repeatable bool) (answered, failover bool) {
	var twerr twirp.Error
	if errors.As(err, &twerr) && errors.Unwrap(twerr) == nil {
		if twerr.Meta("http_error_from_intermediary") == "true" {
			return false, repeatable
		}
		return true, twerr.Code() == twirp.Unavailable
	}
	return false, repeatable || notSent(err)
}

// notSent reports whether err proves the request never reached a server:
// the connection could not be made, so nothing was sent.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
