package migclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
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

// DefaultTimeout bounds each attempt of a call by default.
const DefaultTimeout = 2 * time.Second

// Client calls IDService and SeqService on MIG endpoints (MIG workers,
// or load balancers in front of them), in one datacenter or several, and
// fails over between them. The package documentation says which calls go
// where and when they are repeated.
//
// Safe for concurrent use.
type Client struct {
	// dcs are the configured datacenters: the client's own first, then
	// those of WithRemote in the order given.
	dcs     []*datacenter
	timeout time.Duration
	http    *http.Client
	json    bool
	scheme  string // of the first endpoint, for the nodes a table names
	src     clock.Source

	// routing is the newest sequence routing table seen in an answer.
	routing atomic.Pointer[route.Table]
	// downs is len(mu.downUntil), read without the lock on the hot path.
	downs atomic.Int64
	mu    struct {
		sync.Mutex
		byAddr map[string]*endpoint // nodes reached through the table
		// downUntil: sequence nodes that did not answer, skipped by
		// calls until then (see seqAvoidance).
		downUntil map[string]time.Duration
	}
}

// datacenter is the configured endpoints of one datacenter.
type datacenter struct {
	name      string // "" for the client's own
	endpoints []endpoint
	// next is the endpoint a call tries first: the last one that
	// answered. Staying with one worker keeps this client's IDs
	// increasing while it is healthy, and keeps connections warm.
	next atomic.Uint32
	// downUntil is when (monotonic) calls try this datacenter first
	// again after every endpoint of it failed in one call; 0 while it
	// answers. See usable.
	downUntil atomic.Int64
}

type endpoint struct {
	url  string // base URL, with scheme
	ids  migv1.IDService
	seqs migv1.SeqService
}

// retryDown is how long calls skip a datacenter (other than the last
// resort) after every endpoint of it failed in one call, but for one call
// that tries it again. Without it, a datacenter cut off by a partition
// would cost every call one attempt timeout per endpoint before it
// reached the next datacenter.
const retryDown = time.Second

// New returns a client of endpoints, the endpoints of the client's own
// datacenter (or of the whole deployment, when it is one datacenter):
// each "host:port" or a base URL such as "https://mig-1.tokyo:8080"
// (http:// is assumed without a scheme). WithRemote adds other
// datacenters.
//
// Every error it returns wraps ErrConfig: no endpoints, an endpoint that
// is not an http or https URL with a host, the same endpoint twice
// (across every datacenter), a non-positive WithTimeout, a nil
// WithHTTPClient, a WithRemote with no name, a name used twice or no
// endpoints.
func New(endpoints []string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if len(endpoints) == 0 {
		o.errs = append(o.errs, fmt.Errorf("%w: no endpoints", ErrConfig))
	}
	seen := map[string]bool{}
	parse := func(eps []string) []string {
		urls := make([]string, 0, len(eps))
		for _, e := range eps {
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
		return urls
	}
	local := parse(endpoints)
	remotes := make([][]string, len(o.remotes))
	for i, r := range o.remotes {
		remotes[i] = parse(r.endpoints)
	}
	if err := errors.Join(o.errs...); err != nil {
		return nil, err
	}
	if o.http == nil {
		o.http = &http.Client{Transport: newTransport(o.timeout)}
	}
	c := &Client{timeout: o.timeout, http: o.http, json: o.json, src: clock.NewReal()}
	c.scheme, _, _ = strings.Cut(local[0], "://")
	c.mu.byAddr = map[string]*endpoint{}
	c.mu.downUntil = map[string]time.Duration{}
	c.dcs = append(c.dcs, c.newDatacenter("", local))
	for i, r := range o.remotes {
		c.dcs = append(c.dcs, c.newDatacenter(r.name, remotes[i]))
	}
	return c, nil
}

func (c *Client) newDatacenter(name string, urls []string) *datacenter {
	dc := &datacenter{name: name, endpoints: make([]endpoint, len(urls))}
	for i, u := range urls {
		dc.endpoints[i] = c.newEndpoint(u)
	}
	// A random start spreads many clients over the endpoints.
	dc.next.Store(uint32(rand.IntN(len(urls))))
	return dc
}

// newEndpoint returns the service clients of the endpoint at base URL u.
func (c *Client) newEndpoint(u string) endpoint {
	if c.json {
		return endpoint{url: u, ids: migv1.NewIDServiceJSONClient(u, c.http), seqs: migv1.NewSeqServiceJSONClient(u, c.http)}
	}
	return endpoint{url: u, ids: migv1.NewIDServiceProtobufClient(u, c.http), seqs: migv1.NewSeqServiceProtobufClient(u, c.http)}
}

// CloseIdleConnections closes the client's idle connections. The client
// stays usable; it opens new connections as calls need them.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Origin says where a NextIDs answer came from. A plain value, safe for
// concurrent use.
type Origin struct {
	Endpoint   string // base URL of the endpoint that answered
	WorkerID   uint32 // the worker ID in every ID of the answer
	Datacenter string // the datacenter of that worker, as the server names it
}

// NextIDs returns count new IDs (1..migv1.MaxCount), strictly increasing,
// all from one worker, and where they came from.
//
// Safe to repeat, and repeated on the next endpoint when an answer is lost:
// the lost answer's IDs are skipped, never handed out again (see the
// package documentation). A count out of range is refused without a
// request, with the invalid_argument error the server would give. An
// answer with the wrong number of IDs, or IDs not strictly increasing or
// not below 2^63, is an error wrapping ErrBadAnswer.
func (c *Client) NextIDs(ctx context.Context, count int) ([]mig.ID, Origin, error) {
	if count < 1 || count > migv1.MaxCount {
		return nil, Origin{}, twirp.InvalidArgumentError("count", fmt.Sprintf("%d is not in 1..%d", count, migv1.MaxCount))
	}
	n := int32(count)
	var resp *migv1.NextIDsResponse
	ep, err := c.do(ctx, "NextIDs", func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.ids.NextIDs(ctx, &migv1.NextIDsRequest{Count: &n})
		return err
	})
	if err != nil {
		return nil, Origin{}, err
	}
	origin := Origin{Endpoint: ep.url, WorkerID: resp.WorkerId, Datacenter: resp.Datacenter}
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
	v := uint64(id)
	ep, err := c.do(ctx, "Decode", func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.ids.Decode(ctx, &migv1.DecodeRequest{Id: &v})
		return err
	})
	if err != nil {
		return Decoded{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, resp.Time)
	if err != nil || resp.Id != uint64(id) {
		return Decoded{}, fmt.Errorf("%w: %s: decoding %d gave ID %d, time %q", ErrBadAnswer, ep.url, id, resp.Id, resp.Time)
	}
	return Decoded{ID: id, Time: t.UTC(), Parts: mig.Parts{Tick: resp.Tick, Worker: resp.Worker, Seq: resp.Seq}}, nil
}
