package migclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twitchtv/twirp"
)

// do runs attempt against the configured endpoints until one answers, and
// returns that endpoint. It makes one pass at most over every endpoint:
// the datacenters in order, the client's own first, each from the
// endpoint that last answered there; a datacenter that is down (see
// usable) waits until every other one has failed. attempt must be safe to
// repeat: do repeats it on the next endpoint even when the request may
// have reached a server whose answer was lost.
//
// HAZARD: attempt must send a new request each time and keep nothing from
// a failed attempt. Repeating NextIDs is safe only because a lost answer's
// IDs are never used; replaying an answer would hand its IDs out twice.
func (c *Client) do(ctx context.Context, method string, attempt func(context.Context, *endpoint) error) (*endpoint, error) {
	now := c.src.Mono()
	var errs []error
	var down []*datacenter
	for _, dc := range c.dcs {
		if !dc.usable(now) {
			down = append(down, dc)
			continue
		}
		if ep, err, done := c.pass(ctx, method, dc, attempt, &errs); done {
			return ep, err
		}
	}
	for _, dc := range down {
		if ep, err, done := c.pass(ctx, method, dc, attempt, &errs); done {
			return ep, err
		}
	}
	return nil, allFailedError(method, errs)
}

// usable reports whether a call at now should try dc in its turn: dc
// answered the last call that tried it, or it failed more than retryDown
// ago and this call is the one that tries it again (the others go on
// skipping it for another retryDown, so that only one call in that time
// pays for a datacenter that is still down).
func (dc *datacenter) usable(now time.Duration) bool {
	until := dc.downUntil.Load()
	return until == 0 || (int64(now) >= until && dc.downUntil.CompareAndSwap(until, int64(now+retryDown)))
}

// pass tries dc's endpoints, one each, from the one that last answered.
// done is false when every one failed in a way that lets the call move
// on; their errors are appended to errs, and dc is down for retryDown.
func (c *Client) pass(ctx context.Context, method string, dc *datacenter, attempt func(context.Context, *endpoint) error, errs *[]error) (_ *endpoint, _ error, done bool) {
	n := len(dc.endpoints)
	first := int(dc.next.Load())
	for i := range n {
		k := (first + i) % n
		ep := &dc.endpoints[k]
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		err := attempt(actx, ep)
		cancel()
		if err == nil {
			dc.answered(k)
			return ep, nil, true
		}
		err = fmt.Errorf("%s %s: %w", method, ep.url, err)
		if ctx.Err() != nil {
			return nil, err, true // the caller gave up; its context says why
		}
		answered, failover := classify(err, true)
		if !failover {
			if answered {
				dc.answered(k) // it is up
			}
			return nil, err, true
		}
		*errs = append(*errs, err)
	}
	dc.downUntil.Store(int64(c.src.Mono() + retryDown))
	return nil, nil, false
}

// answered records that endpoint k of dc answered.
func (dc *datacenter) answered(k int) {
	dc.next.Store(uint32(k))
	if dc.downUntil.Load() != 0 {
		dc.downUntil.Store(0)
	}
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
