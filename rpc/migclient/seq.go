package migclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade/route"
)

// seqAttempts bounds the rounds of one SeqService call: a redirect to the
// node a newer table names, or a retry after the owner was unavailable (a
// section in its activation delay, or a node that died and whose sections
// are being moved), each cost one. A round that learned a newer table is
// followed at once (a handoff's new owner serves as soon as it has read
// the release: waiting would only add to the gap); between rounds that
// learned nothing new the call waits a little: 50 ms, then 100 ms (see
// maxSeqBackoff).
const seqAttempts = 5

// Sequences and routing.
//
// A SeqService call goes to the node that the client's routing table
// names for the uid; a client with no table (or a uid its table does not
// place) asks the configured endpoints, which answer or redirect. Every
// request carries the table's version, and an answer that carries a newer
// table replaces it: a client with a stale or empty table reaches the
// right node in at most one extra round trip.
//
// Repeating a sequence call is safe: a value whose answer was lost is
// skipped, and the repeat's value is above it; a sequence only has to
// grow. Nothing the client keeps from a failed attempt is ever handed out.

// NextSeq advances uid's sequence and returns the new value. An answer of
// 0 is an error wrapping ErrBadAnswer: sequences start at 1.
func (c *Client) NextSeq(ctx context.Context, uid uint64) (uint64, error) {
	var v uint64
	err := c.seqCall(ctx, "NextSeq", uid, func(ctx context.Context, ep *endpoint, version uint64) (*migv1.Routing, error) {
		resp, err := ep.seqs.NextSeq(ctx, &migv1.NextSeqRequest{Uid: uid, RoutingVersion: version, WantRouting: version == 0})
		if err != nil {
			return nil, err
		}
		if resp.Seq == 0 {
			return nil, fmt.Errorf("%w: %s: sequence 0 for uid %d", ErrBadAnswer, ep.url, uid)
		}
		v = resp.Seq
		return resp.Routing, nil
	})
	return v, err
}

// CurSeq returns uid's latest sequence without advancing it (0 for a uid
// never advanced).
func (c *Client) CurSeq(ctx context.Context, uid uint64) (uint64, error) {
	var v uint64
	err := c.seqCall(ctx, "CurSeq", uid, func(ctx context.Context, ep *endpoint, version uint64) (*migv1.Routing, error) {
		resp, err := ep.seqs.CurSeq(ctx, &migv1.CurSeqRequest{Uid: uid, RoutingVersion: version, WantRouting: version == 0})
		if err != nil {
			return nil, err
		}
		v = resp.Seq
		return resp.Routing, nil
	})
	return v, err
}

// NextSeqs advances the sequences of every uid in uids (each at most once)
// and returns the new values, seqs[i] for uids[i]. It splits the uids by
// the node its table names and sends every node its share at once. One node
// advances its share all or none; across nodes a failure may leave some
// shares advanced, and their values are then skipped, never reused. An
// answer with the wrong number of values, or a 0, is an error wrapping
// ErrBadAnswer.
func (c *Client) NextSeqs(ctx context.Context, uids []uint64) ([]uint64, error) {
	if len(uids) == 0 {
		return nil, twirp.InvalidArgumentError("uids", "is empty: name at least one uid")
	}
	out := make([]uint64, len(uids))
	pending := make([]int, len(uids))
	for i := range pending {
		pending[i] = i
	}
	var lastErr error
	avoid := avoidance{}
	wait := 0 // rounds since the table last changed
	for round := 0; len(pending) > 0; round++ {
		if round == seqAttempts {
			return nil, exhausted("NextSeqs", lastErr)
		}
		if wait > 0 {
			if err := c.backoff(ctx, wait); err != nil {
				return nil, err
			}
		}
		r := c.routing.Load()
		shares := map[string][]int{}
		for _, i := range pending {
			addr := c.pick(r, uids[i], avoid)
			shares[addr] = append(shares[addr], i)
		}
		// The shares go out together: a batch over nodes of several
		// datacenters costs the farthest one's round trip, not their sum.
		results := make([]shareResult, 0, len(shares))
		for addr, idx := range shares {
			results = append(results, shareResult{addr: addr, idx: idx, avoid: avoid.clone()})
		}
		var wg sync.WaitGroup
		for k := range results {
			wg.Go(func() { c.nextShare(ctx, uids, &results[k]) })
		}
		wg.Wait()
		pending = pending[:0:0]
		redirected := false
		for _, res := range results {
			avoid.merge(res.avoid)
			redirected = redirected || migv1.RedirectRouting(res.err) != nil
			switch {
			case res.err == nil:
				for k, i := range res.idx {
					out[i] = res.vals[k]
				}
			case res.again:
				lastErr = res.err
				pending = append(pending, res.idx...)
			default:
				return nil, res.err
			}
		}
		if redirected {
			avoid.forgive() // as seqRound did, in a share's own avoidance
		}
		if newer := c.routing.Load(); newer != nil && (r == nil || newer.Version > r.Version) {
			wait = 0
		} else {
			wait++
		}
	}
	return out, nil
}

// shareResult is one NextSeqs round's share for one node: the uids (by
// index), the call's own avoidance, and what came back.
type shareResult struct {
	addr  string
	idx   []int
	avoid avoidance
	vals  []uint64
	again bool
	err   error
}

// nextShare sends res's share of uids to its node (one round).
func (c *Client) nextShare(ctx context.Context, uids []uint64, res *shareResult) {
	sub := make([]uint64, len(res.idx))
	for k, i := range res.idx {
		sub[k] = uids[i]
	}
	attempt := func(ctx context.Context, ep *endpoint, version uint64) (*migv1.Routing, error) {
		resp, err := ep.seqs.NextSeqs(ctx, &migv1.NextSeqsRequest{Uids: sub, RoutingVersion: version, WantRouting: version == 0})
		if err != nil {
			return nil, err
		}
		if len(resp.Seqs) != len(sub) {
			return nil, fmt.Errorf("%w: %s: %d sequences for %d uids", ErrBadAnswer, ep.url, len(resp.Seqs), len(sub))
		}
		for k, v := range resp.Seqs {
			if v == 0 {
				return nil, fmt.Errorf("%w: %s: sequence 0 for uid %d", ErrBadAnswer, ep.url, sub[k])
			}
		}
		res.vals = resp.Seqs
		return resp.Routing, nil
	}
	res.again, res.err = c.seqRound(ctx, "NextSeqs", res.addr, sub, res.avoid, attempt)
}

// seqCall runs a single-uid call: to the uid's owner by the table, or to
// the configured endpoints, following redirects and retrying an
// unavailable owner, at most seqAttempts rounds.
func (c *Client) seqCall(ctx context.Context, method string, uid uint64, attempt func(context.Context, *endpoint, uint64) (*migv1.Routing, error)) error {
	var err error
	avoid := avoidance{}
	wait := 0 // rounds since the table last changed
	for range seqAttempts {
		if wait > 0 {
			if berr := c.backoff(ctx, wait); berr != nil {
				return berr
			}
		}
		r := c.routing.Load()
		var again bool
		again, err = c.seqRound(ctx, method, c.pick(r, uid, avoid), []uint64{uid}, avoid, attempt)
		if !again {
			return err
		}
		if newer := c.routing.Load(); newer != nil && (r == nil || newer.Version > r.Version) {
			wait = 0
		} else {
			wait++
		}
	}
	return exhausted(method, err)
}

// exhausted is the error of a call whose every round was redirected or
// refused as unavailable: sections are moving between nodes, so the call
// is unavailable and worth repeating a little later.
func exhausted(method string, last error) error {
	return twirp.WrapError(twirp.NewError(twirp.Unavailable,
		fmt.Sprintf("%s: no node served the call in %d rounds (sections moving?): %v", method, seqAttempts, last)).
		WithMeta(migv1.MetaRetryable, "true"), last)
}

// avoidance is the nodes one call avoids, and why.
type avoidance map[string]avoidKind

type avoidKind int

const (
	// down: the node did not answer (connection refused, timed out): it
	// is avoided for the rest of the call.
	down avoidKind = iota + 1
	// busy: the node answered unavailable (a group activating, a node cut
	// off from etcd): another node is asked, which has perhaps a newer
	// table; when it sends the call back (a redirect), the busy nodes are
	// tried again, after the round's backoff, since it was the owner
	// after all.
	busy
)

// seqRetryDown is how long calls skip a sequence node that did not
// answer, but for one call that tries it again (seqUsable): short, since
// a node that missed one attempt may well answer the next (a redirect
// back to it from a node with the same table is no news), and long
// enough that a dead owner costs one attempt's timeout now and then, not
// one a call.
const seqRetryDown = 250 * time.Millisecond

// seqUsable reports whether a call may send to the node at addr: it
// answered the last call that tried it, or it did not, more than
// seqRetryDown ago, and this call is the one that tries it again (the
// others skip it for another seqRetryDown). Without it every call would
// first pay an attempt's timeout at a dead owner its table still names (a
// datacenter lost: until the client learns the table that moved the
// node's groups, every call starts there).
func (c *Client) seqUsable(addr string) bool { return c.seqMayAsk(addr, true) }

// seqIsDown reports whether the node at addr did not answer a call of
// the last seqRetryDown.
func (c *Client) seqIsDown(addr string) bool { return !c.seqMayAsk(addr, false) }

// seqMayAsk reports whether the node at addr is not remembered as down;
// with try, one whose time is up is given to this call, and stays skipped
// by the others for another seqRetryDown.
func (c *Client) seqMayAsk(addr string, try bool) bool {
	if c.downs.Load() == 0 {
		return true
	}
	now := c.src.Mono()
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.mu.downUntil[addr]
	switch {
	case !ok:
	case now < until:
		return false
	case try:
		c.mu.downUntil[addr] = now + seqRetryDown // this call tries it
	}
	return true
}

// forgetGone drops the nodes remembered as not answering that table t no
// longer names (replaced, moved): they will not be asked again, and the
// memory would only grow.
func (c *Client) forgetGone(t *route.Table) {
	if c.downs.Load() == 0 {
		return
	}
	named := map[string]bool{}
	for _, rt := range t.Routes {
		named[rt.Address] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr := range c.mu.downUntil {
		if !named[addr] {
			delete(c.mu.downUntil, addr)
		}
	}
	c.downs.Store(int64(len(c.mu.downUntil)))
}

// seqDown records that the node at addr did not answer.
func (c *Client) seqDown(addr string) {
	c.mu.Lock()
	c.mu.downUntil[addr] = c.src.Mono() + seqRetryDown
	c.downs.Store(int64(len(c.mu.downUntil)))
	c.mu.Unlock()
}

// seqAnswered records that the node at addr answered ("" is the
// configured endpoints: nothing to record).
func (c *Client) seqAnswered(addr string) {
	if addr == "" || c.downs.Load() == 0 {
		return
	}
	c.mu.Lock()
	delete(c.mu.downUntil, addr)
	c.downs.Store(int64(len(c.mu.downUntil)))
	c.mu.Unlock()
}

// clone returns a copy of a, for one share of a call sent in parallel.
func (a avoidance) clone() avoidance { return maps.Clone(a) }

// merge adds what a share learned: a node down for one share is down for
// all. A share's redirect forgave busy nodes in its own copy only: the
// caller forgives them in the merged one too.
func (a avoidance) merge(b avoidance) {
	for addr, k := range b {
		if a[addr] != down {
			a[addr] = k
		}
	}
}

// forgive clears the busy nodes: a redirect says who the owner is now.
func (a avoidance) forgive() {
	for addr, k := range a {
		if k == busy {
			delete(a, addr)
		}
	}
}

// pick returns the address to send uid to: its owner by r, unless the
// owner failed during this call, or did not answer a call of the last
// seqRetryDown (then one call that wants it tries it again); else any other
// node r names (it answers or redirects to the current owner); "" for the
// configured endpoints.
func (c *Client) pick(r *route.Table, uid uint64, avoid avoidance) string {
	if r == nil {
		return ""
	}
	if o, ok := r.Lookup(uid); ok && o.Address != "" && avoid[o.Address] == 0 && c.seqUsable(o.Address) {
		return o.Address
	}
	for _, rt := range r.Routes {
		if rt.Address != "" && avoid[rt.Address] == 0 && !c.seqIsDown(rt.Address) {
			return rt.Address
		}
	}
	return ""
}

// seqRound sends one attempt to the node at addr, or, with addr "", to
// the configured endpoints (one pass). It learns the table of the answer
// or of a redirect, and reports whether another round may succeed. A node
// that failed goes into avoid (see avoidance).
func (c *Client) seqRound(ctx context.Context, method, addr string, uids []uint64, avoid avoidance, attempt func(context.Context, *endpoint, uint64) (*migv1.Routing, error)) (again bool, err error) {
	version := uint64(0)
	if r := c.routing.Load(); r != nil {
		version = r.Version
	}
	var learned *migv1.Routing
	call := func(ctx context.Context, ep *endpoint) (err error) {
		learned, err = attempt(ctx, ep, version)
		return err
	}
	if addr != "" {
		ep := c.endpointAt(addr)
		pctx, reroute := context.WithCancelCause(ctx)
		actx, cancel := context.WithTimeout(pctx, c.timeout)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { c.watchOwner(actx, done, addr, uids, version, reroute) })
		err = call(actx, ep)
		close(done)
		wg.Wait()
		rerouted := errors.Is(context.Cause(pctx), errRerouted)
		cancel()
		reroute(nil)
		if err != nil {
			err = fmt.Errorf("%s %s: %w", method, ep.url, err)
		}
		if err != nil && rerouted && ctx.Err() == nil {
			// Abandoned for the owner a newer table names: no news of this
			// node, and the next round goes at once (the table changed).
			return true, err
		}
	} else {
		_, err = c.do(ctx, method, call)
	}
	if err == nil {
		c.learn(learned)
		c.seqAnswered(addr)
		return false, nil
	}
	if ctx.Err() != nil {
		return false, err
	}
	if r := migv1.RedirectRouting(err); r != nil {
		c.learn(r)
		c.seqAnswered(addr)
		avoid.forgive()
		return true, err
	}
	if addr != "" {
		// The node did not serve the call: it is down (no answer), cut off
		// from etcd and fenced, or in a section's activation delay (both
		// unavailable). Its sections may have moved: ask another node the
		// table names, which answers, redirects with a newer table, or
		// says unavailable too.
		answered, failover := classify(err, true)
		switch {
		case failover && answered:
			avoid[addr] = busy
			c.seqAnswered(addr)
		case failover:
			avoid[addr] = down
			c.seqDown(addr)
		}
		return failover, err
	}
	var twerr twirp.Error
	return errors.As(err, &twerr) && twerr.Code() == twirp.Unavailable, err
}

// learn keeps p if it is newer than the table the client has and covers
// its groups; a table that does not is dropped (the client asks the
// configured endpoints instead).
func (c *Client) learn(p *migv1.Routing) {
	if p == nil {
		return
	}
	t, err := p.Table()
	if err != nil {
		return
	}
	for r := &t; ; {
		old := c.routing.Load()
		if old != nil && old.Version >= r.Version {
			return
		}
		if c.routing.CompareAndSwap(old, r) {
			c.forgetGone(r)
			return
		}
	}
}

// RoutingVersion returns the version of the sequence routing table the
// client holds (0 for none).
func (c *Client) RoutingVersion() uint64 {
	if r := c.routing.Load(); r != nil {
		return r.Version
	}
	return 0
}

// endpointAt returns the endpoint of the node at addr (host:port), made
// once and kept.
func (c *Client) endpointAt(addr string) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep, ok := c.mu.byAddr[addr]; ok {
		return ep
	}
	ep := c.newEndpoint(c.scheme + "://" + addr)
	c.mu.byAddr[addr] = &ep
	return &ep
}

// maxSeqBackoff caps the wait between rounds that learned nothing new. A
// call that finds its uid's owner dead learns the table that moves the
// owner's sections only by asking again: every wait is time the moved
// sections may already be served elsewhere. Doubling to 400 ms left the
// calls of a failover a fifth of a second, on average, behind the table;
// at most seqAttempts rounds keep a dead owner's calls to a few requests.
const maxSeqBackoff = 100 * time.Millisecond

// errRerouted ends an attempt whose uids a newer table gives to another
// node (watchOwner).
var errRerouted = errors.New("migclient: a newer routing table moved the uids to another node")

// Probing while an attempt hangs (watchOwner).
const (
	// seqProbeAfter is how long an attempt waits for its node before the
	// call asks another node for the table: several round trips across
	// datacenters, so that a node that answers is never probed about.
	seqProbeAfter = 250 * time.Millisecond
	// seqProbeEvery spaces the probes of one attempt after the first.
	seqProbeEvery = 250 * time.Millisecond
)

// watchOwner follows an attempt at the node at addr, until done closes
// or ctx ends: once it has waited seqProbeAfter, it asks another node of
// the table (CurSeq of the first uid: a read, which that node answers or
// redirects, with its table if newer) every seqProbeEvery, and when a
// table newer than version (the attempt's) gives any of uids to another
// node, it ends the attempt with errRerouted. An attempt at a node that died in a way that swallows
// requests (a datacenter cut off, a host gone) would otherwise hang for
// the whole attempt timeout after the node's sections were moved and
// served elsewhere.
func (c *Client) watchOwner(ctx context.Context, done <-chan struct{}, addr string, uids []uint64, version uint64, reroute context.CancelCauseFunc) {
	wait := seqProbeAfter
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-c.src.After(wait):
		}
		wait = seqProbeEvery
		r := c.routing.Load()
		if moved(r, version, addr, uids) {
			reroute(errRerouted) // another call learned it already
			return
		}
		other := c.pick(r, uids[0], avoidance{addr: down})
		if other == "" || other == addr {
			continue
		}
		known := uint64(0)
		if r != nil {
			known = r.Version
		}
		pctx, cancel := context.WithTimeout(ctx, c.timeout)
		resp, err := c.endpointAt(other).seqs.CurSeq(pctx, &migv1.CurSeqRequest{Uid: uids[0], RoutingVersion: known})
		cancel()
		if err == nil {
			c.learn(resp.Routing)
		} else {
			c.learn(migv1.RedirectRouting(err))
		}
		if moved(c.routing.Load(), version, addr, uids) {
			reroute(errRerouted)
			return
		}
	}
}

// moved reports whether table r is newer than version and gives any of
// uids to a node other than the one at addr.
func moved(r *route.Table, version uint64, addr string, uids []uint64) bool {
	if r == nil || r.Version <= version {
		return false
	}
	for _, u := range uids {
		if o, ok := r.Lookup(u); ok && o.Address != addr {
			return true
		}
	}
	return false
}

// backoff waits before the wait-th round in a row that follows one that
// learned nothing new (1, 2, ...): 50 ms, then maxSeqBackoff.
func (c *Client) backoff(ctx context.Context, wait int) error {
	return clock.Sleep(ctx, c.src, min(50*time.Millisecond<<(wait-1), maxSeqBackoff))
}
