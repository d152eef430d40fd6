package rpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
	"github.com/migsvc/mig/seqfacade/route"
)

// DefaultForwardTimeout bounds one forwarded sequence call.
const DefaultForwardTimeout = time.Second

// Forwarding: a sequence call from a client that does not route (it sent
// no routing version and did not ask for the table: curl, a load
// balancer, a client in another language) for a uid another node serves
// is sent on by the node that received it to the owner, over the same
// protocol, and the owner's answer is returned as it is. The forwarded
// request names the forwarding node (forwarded_by), and a node never
// forwards a forwarded request: one hop, so no loop while tables change.
// When the owner's answer says the table changed (it is not the owner
// either), the forwarding node tries once more with the owner that answer
// names; a call that still finds no owner, or whose owner does not answer
// in time, is unavailable (retryable). Clients that route (the Go client)
// are never forwarded: they get the table and go to the owner themselves.

// WithForwarding makes the server forward the sequence calls of clients
// that do not route to the uid's owner (see above): self names this node
// in forwarded requests, scheme is how to reach the other nodes ("http"
// or "https"), c sends the requests (nil: a pooled http.Client), and
// timeout bounds each forwarded call (0: DefaultForwardTimeout). Without
// it such calls are refused with failed_precondition and the table, as
// for clients that route.
func WithForwarding(self, scheme string, c *http.Client, timeout time.Duration) ServerOption {
	return func(o *serverOptions) {
		switch {
		case self == "":
			o.errs = append(o.errs, fmt.Errorf("%w: forwarding needs this node's name", ErrConfig))
		case scheme != "http" && scheme != "https":
			o.errs = append(o.errs, fmt.Errorf("%w: forwarding scheme %q is not http or https", ErrConfig, scheme))
		case timeout < 0:
			o.errs = append(o.errs, fmt.Errorf("%w: forward timeout %v is negative", ErrConfig, timeout))
		default:
			if c == nil {
				c = pooledClient()
			}
			if timeout == 0 {
				timeout = DefaultForwardTimeout
			}
			o.fwd = &forwarder{self: self, timeout: timeout, peers: newPeerClients(scheme, c, migv1.NewSeqServiceProtobufClient)}
		}
	}
}

// pooledClient is the client of calls between nodes when the caller
// gives none: net/http's, keeping enough connections per peer for a
// node's concurrent calls.
func pooledClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t}
}

// forwarder sends sequence calls on to their owners. Safe for concurrent
// use.
type forwarder struct {
	self    string
	timeout time.Duration
	peers   *peerClients[migv1.SeqService]

	// forwarded counts forwarded calls by the code of their answer.
	forwarded *prometheus.CounterVec
}

// register adds the forwarder's metric to reg.
func (f *forwarder) register(reg prometheus.Registerer) error {
	f.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mig",
		Name:      "seq_forwarded_total",
		Help:      "Sequence calls of clients that do not route, forwarded to the uid's owner, by the Twirp code of the answer (ok for success).",
	}, []string{"code"})
	return reg.Register(f.forwarded)
}

// count records a forwarded call's outcome.
func (f *forwarder) count(err error) {
	code := codeOK
	var twerr twirp.Error
	if errors.As(err, &twerr) {
		code = string(twerr.Code())
	} else if err != nil {
		code = string(twirp.Internal)
	}
	f.forwarded.WithLabelValues(code).Inc()
}

// peerClients makes one Twirp client per node address, on first use:
// the forwarded calls' and the releases asked for. Safe for concurrent
// use.
type peerClients[T any] struct {
	scheme string
	http   *http.Client
	client func(baseURL string, c migv1.HTTPClient, opts ...twirp.ClientOption) T

	mu sync.Mutex
	m  map[string]T // by address
}

func newPeerClients[T any](scheme string, c *http.Client, client func(string, migv1.HTTPClient, ...twirp.ClientOption) T) *peerClients[T] {
	return &peerClients[T]{scheme: scheme, http: c, client: client, m: map[string]T{}}
}

func (p *peerClients[T]) at(addr string) T {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.m[addr]
	if !ok {
		c = p.client(p.scheme+"://"+addr, p.http)
		p.m[addr] = c
	}
	return c
}

// forwards reports whether a call whose answer here is err, from a client
// that sent version and want, goes on to an owner, and to which.
func forwardTo(err error, version uint64, want bool, forwardedBy string) (*seqfacade.NotOwnerError, bool) {
	var no *seqfacade.NotOwnerError
	if version != 0 || want || forwardedBy != "" || !errors.As(err, &no) || errors.Is(err, seqfacade.ErrUnavailable) {
		return nil, false
	}
	return no, true
}

// call sends one forwarded call to the owner no names, and once more to
// the owner a refusal names; send makes the call on a peer with the
// routing version to send.
func (f *forwarder) call(ctx context.Context, no *seqfacade.NotOwnerError, send func(context.Context, migv1.SeqService, uint64) error) (err error) {
	defer func() { f.count(err) }()
	t, addr, node := no.Routing, no.Address, no.Owner
	for attempt := 0; ; attempt++ {
		if addr == "" {
			return unavailablef("node %s serves the uid but published no address to forward to", node)
		}
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		err := send(cctx, f.peers.at(addr), t.Version)
		cancel()
		if err == nil {
			return nil
		}
		var twerr twirp.Error
		if errors.As(err, &twerr) && errors.Unwrap(twerr) == nil {
			// The owner answered. A refusal with a newer table names the
			// owner now: one more try there.
			if r := migv1.RedirectRouting(twerr); r != nil && attempt == 0 {
				if nt, err := r.Table(); err == nil && nt.Version > t.Version {
					if o, ok := ownerOfUID(nt, twerr); ok {
						t, addr, node = nt, o.Address, o.Node
						continue
					}
				}
			}
			if twerr.Code() == twirp.FailedPrecondition {
				return unavailablef("forwarded to node %s at %s, which does not serve the uid either (routing is changing): %s", node, addr, twerr.Msg())
			}
			return twerr // the owner's answer, as it is
		}
		return unavailablef("forwarding to node %s at %s: %v", node, addr, err)
	}
}

// ownerOfUID finds, in table t, the owner the refusal's address meta
// names.
func ownerOfUID(t route.Table, twerr twirp.Error) (route.Route, bool) {
	addr := twerr.Meta(migv1.MetaAddress)
	for _, r := range t.Routes {
		if r.Address == addr && addr != "" {
			return r, true
		}
	}
	return route.Route{}, false
}

// unavailablef is a retryable unavailable answer.
func unavailablef(format string, args ...any) twirp.Error {
	return twirp.NewError(twirp.Unavailable, fmt.Sprintf(format, args...)).WithMeta(migv1.MetaRetryable, "true")
}
