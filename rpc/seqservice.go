package rpc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
	"github.com/migsvc/mig/seqfacade/route"
)

// DefaultSeqWait bounds how long a SeqService call may wait for its
// section's next step to be persisted, or its group to activate (the
// default activation delay is a second), before it answers unavailable:
// less than the Go client's attempt timeout, so that the client gets the
// answer rather than giving up on the node.
const DefaultSeqWait = 1500 * time.Millisecond

// SeqAllocator is what the server needs from the sequence node:
// *seqfacade.Node implements it. Implementations must be safe for
// concurrent use, and every error they return must mean that nothing was
// handed out (a value taken and then refused is skipped, never reused).
type SeqAllocator interface {
	Next(ctx context.Context, uid uint64) (uint64, error)
	NextBatch(ctx context.Context, uids []uint64) ([]uint64, error)
	Current(ctx context.Context, uid uint64) (uint64, error)
	// TryNext and TryCurrent are Next's and Current's paths that never
	// wait: a value, or false and nothing handed out. The server calls
	// them first, and builds the context that bounds a wait only when
	// they say false.
	TryNext(uid uint64) (uint64, bool)
	TryCurrent(uid uint64) (uint64, bool)
	// Routing is the table the allocator serves by (Version 0: none).
	Routing() route.Table
	// Config is the allocator's configuration, its defaults set. The
	// server reads UIDLimit and MaxBatch from it once, and checks every
	// request against them before the allocator sees it.
	Config() seqfacade.Config
}

// WithSeq serves SeqService from a, beside IDService on the same handler.
// wait bounds a call's wait for a persisted step (0 means
// DefaultSeqWait).
func WithSeq(a SeqAllocator, wait time.Duration) ServerOption {
	return func(o *serverOptions) {
		switch {
		case a == nil:
			o.errs = append(o.errs, fmt.Errorf("%w: nil SeqAllocator", ErrConfig))
		case wait < 0:
			o.errs = append(o.errs, fmt.Errorf("%w: sequence wait %v is negative", ErrConfig, wait))
		default:
			o.seq = a
			o.seqWait = cmp.Or(wait, DefaultSeqWait)
		}
	}
}

// seqService implements migv1.SeqService by translating between the wire
// and the SeqAllocator. Safe for concurrent use.
type seqService struct {
	alloc    SeqAllocator
	wait     time.Duration
	metrics  *metrics
	fwd      *forwarder // nil: calls of clients that do not route are refused, not forwarded
	uidLimit uint64     // valid uids are 1..uidLimit-1
	maxBatch int        // the most uids of one NextSeqs
}

func newSeqService(a SeqAllocator, wait time.Duration, m *metrics, fwd *forwarder) *seqService {
	cfg := a.Config()
	return &seqService{alloc: a, wait: wait, metrics: m, fwd: fwd, uidLimit: cfg.UIDLimit, maxBatch: cfg.MaxBatch}
}

// checkUID returns an *argError unless uid is in 1..uidLimit-1. The node
// checks the same; checking here first gives the refusal in the
// protocol's words, with the limit, and keeps bad input away from the
// node.
func (s *seqService) checkUID(uid uint64) error {
	if uid == 0 || uid >= s.uidLimit {
		return &argError{field: "uid", msg: fmt.Sprintf("uid %d is not in 1..%d", uid, s.uidLimit-1)}
	}
	return nil
}

// checkUIDs returns an *argError unless uids names 1..maxBatch uids, each
// in 1..uidLimit-1. Repeats are left to the node, which finds them
// anyway: see repeatError.
func (s *seqService) checkUIDs(uids []uint64) error {
	switch {
	case len(uids) == 0:
		return &argError{field: "uids", msg: "uids is empty: name at least one uid"}
	case len(uids) > s.maxBatch:
		return &argError{field: "uids", msg: fmt.Sprintf("uids has %d uids, more than the limit of %d", len(uids), s.maxBatch)}
	}
	for i, uid := range uids {
		if uid == 0 || uid >= s.uidLimit {
			return &argError{field: "uids", msg: fmt.Sprintf("uids[%d]: uid %d is not in 1..%d", i, uid, s.uidLimit-1)}
		}
	}
	return nil
}

// repeatError re-states the node's refusal of a batch that names a uid
// twice, err, in the protocol's words: which uid, and where.
func repeatError(uids []uint64, err error) error {
	first := make(map[uint64]int, len(uids))
	for i, uid := range uids {
		if j, dup := first[uid]; dup {
			return &argError{field: "uids", msg: fmt.Sprintf("uids names uid %d twice, at uids[%d] and uids[%d]: each uid at most once", uid, j, i), cause: err}
		}
		first[uid] = i
	}
	return err // the node saw a repeat the request does not have: its own word
}

var _ migv1.SeqService = (*seqService)(nil)

// NextSeq implements migv1.SeqService.
func (s *seqService) NextSeq(ctx context.Context, req *migv1.NextSeqRequest) (*migv1.NextSeqResponse, error) {
	return answer(ctx, req, s.nextSeq)
}

// nextSeq fills resp with req's answer: NextSeq for the fast route, which
// reuses resp.
func (s *seqService) nextSeq(ctx context.Context, req *migv1.NextSeqRequest, resp *migv1.NextSeqResponse) error {
	if err := s.checkUID(req.Uid); err != nil {
		return twirpError(err)
	}
	v, ok := s.alloc.TryNext(req.Uid)
	if !ok {
		var err error
		if v, err = s.bounded(ctx, req.Uid, s.alloc.Next); err != nil {
			if no, ok := s.forwards(err, req.RoutingVersion, req.WantRouting, req.ForwardedBy); ok {
				return s.fwd.call(ctx, no, func(ctx context.Context, p migv1.SeqService, version uint64) error {
					r, err := p.NextSeq(ctx, &migv1.NextSeqRequest{Uid: req.Uid, RoutingVersion: version, ForwardedBy: s.fwd.self})
					if err == nil {
						s.metrics.seqsIssued.Inc()
						resp.Seq = r.Seq
					}
					return err
				})
			}
			return twirpError(err)
		}
	}
	s.metrics.seqsIssued.Inc()
	resp.Seq, resp.Routing = v, s.routingFor(req.RoutingVersion, req.WantRouting)
	return nil
}

// NextSeqs implements migv1.SeqService.
func (s *seqService) NextSeqs(ctx context.Context, req *migv1.NextSeqsRequest) (*migv1.NextSeqsResponse, error) {
	return answer(ctx, req, s.nextSeqs)
}

func (s *seqService) nextSeqs(ctx context.Context, req *migv1.NextSeqsRequest, resp *migv1.NextSeqsResponse) error {
	if err := s.checkUIDs(req.Uids); err != nil {
		return twirpError(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	vs, err := s.alloc.NextBatch(ctx, req.Uids)
	if no, ok := s.forwards(err, req.RoutingVersion, req.WantRouting, req.ForwardedBy); ok {
		return s.forwardBatch(ctx, no.Routing, req.Uids, resp)
	}
	if errors.Is(err, seqfacade.ErrDuplicateUID) {
		err = repeatError(req.Uids, err)
	}
	if err != nil {
		return twirpError(err)
	}
	s.metrics.seqsIssued.Add(float64(len(vs)))
	resp.Seqs, resp.Routing = vs, s.routingFor(req.RoutingVersion, req.WantRouting)
	return nil
}

// CurSeq implements migv1.SeqService.
func (s *seqService) CurSeq(ctx context.Context, req *migv1.CurSeqRequest) (*migv1.CurSeqResponse, error) {
	return answer(ctx, req, s.curSeq)
}

func (s *seqService) curSeq(ctx context.Context, req *migv1.CurSeqRequest, resp *migv1.CurSeqResponse) error {
	if err := s.checkUID(req.Uid); err != nil {
		return twirpError(err)
	}
	v, ok := s.alloc.TryCurrent(req.Uid)
	if !ok {
		var err error
		if v, err = s.bounded(ctx, req.Uid, s.alloc.Current); err != nil {
			if no, ok := s.forwards(err, req.RoutingVersion, req.WantRouting, req.ForwardedBy); ok {
				return s.fwd.call(ctx, no, func(ctx context.Context, p migv1.SeqService, version uint64) error {
					r, err := p.CurSeq(ctx, &migv1.CurSeqRequest{Uid: req.Uid, RoutingVersion: version, ForwardedBy: s.fwd.self})
					if err == nil {
						resp.Seq = r.Seq
					}
					return err
				})
			}
			return twirpError(err)
		}
	}
	resp.Seq, resp.Routing = v, s.routingFor(req.RoutingVersion, req.WantRouting)
	return nil
}

// forwards reports whether a call answered err here goes on to its owner
// (see forward.go), and to which.
func (s *seqService) forwards(err error, version uint64, want bool, forwardedBy string) (*seqfacade.NotOwnerError, bool) {
	if s.fwd == nil || err == nil {
		return nil, false
	}
	return forwardTo(err, version, want, forwardedBy)
}

// forwardBatch answers a NextSeqs of a client that does not route: each
// node's share of the uids, by the table t, goes to that node (this
// node's own share is served here), and the values come back in the
// uids' order. Each share is all or nothing; across nodes a failure may
// leave some shares advanced, whose values are then skipped, never
// reused, as when the Go client splits a batch.
func (s *seqService) forwardBatch(ctx context.Context, t route.Table, uids []uint64, resp *migv1.NextSeqsResponse) error {
	shares := map[string][]int{}
	var order []string
	for i, uid := range uids {
		r, ok := t.Lookup(uid)
		if !ok {
			return twirpError(fmt.Errorf("%w: uid %d has no owner in routing version %d", seqfacade.ErrUnavailable, uid, t.Version))
		}
		if _, seen := shares[r.Node]; !seen {
			order = append(order, r.Node)
		}
		shares[r.Node] = append(shares[r.Node], i)
	}
	out := make([]uint64, len(uids))
	for _, node := range order {
		idx := shares[node]
		sub := make([]uint64, len(idx))
		for k, i := range idx {
			sub[k] = uids[i]
		}
		vs, err := s.alloc.NextBatch(ctx, sub)
		var no *seqfacade.NotOwnerError
		switch {
		case err == nil:
		case errors.As(err, &no) && !errors.Is(err, seqfacade.ErrUnavailable):
			err = s.fwd.call(ctx, no, func(ctx context.Context, p migv1.SeqService, version uint64) error {
				r, err := p.NextSeqs(ctx, &migv1.NextSeqsRequest{Uids: sub, RoutingVersion: version, ForwardedBy: s.fwd.self})
				if err == nil && len(r.Seqs) != len(sub) {
					err = unavailablef("node %s answered %d sequences for %d uids", no.Owner, len(r.Seqs), len(sub))
				}
				if err == nil {
					vs = r.Seqs
				}
				return err
			})
			if err != nil {
				return err
			}
		default:
			return twirpError(err)
		}
		for k, i := range idx {
			out[i] = vs[k]
		}
	}
	s.metrics.seqsIssued.Add(float64(len(out)))
	resp.Seqs = out
	return nil
}

// bounded calls f for uid with ctx bounded by the server's sequence wait.
func (s *seqService) bounded(ctx context.Context, uid uint64, f func(context.Context, uint64) (uint64, error)) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	return f(ctx, uid)
}

// routingFor returns the current table for a client that asked for it
// (want) or that knows an older version than the current one, and nil
// otherwise: a client that sends no version (curl, a load balancer) does
// not route, and a table would only weigh down its every answer.
func (s *seqService) routingFor(known uint64, want bool) *migv1.Routing {
	if !want && known == 0 {
		return nil
	}
	if r := s.alloc.Routing(); want || r.Version > known {
		return migv1.NewRouting(r)
	}
	return nil
}
