package rpc

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
)

// DefaultSeqWait bounds how long a SeqService call may wait for its
// section's next step to be persisted before it answers unavailable.
const DefaultSeqWait = 2 * time.Second

// SeqAllocator is what the server needs from the sequence node:
// *seqfacade.Node implements it. Implementations must be safe for
// concurrent use, and every error they return must mean that nothing was
// handed out (a value taken and then refused is skipped, never reused).
type SeqAllocator interface {
	Next(ctx context.Context, uid uint64) (uint64, error)
	NextBatch(ctx context.Context, uids []uint64) ([]uint64, error)
	Current(ctx context.Context, uid uint64) (uint64, error)
	// Routing is the table the allocator serves by (Version 0: none).
	Routing() seqfacade.Routing
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
	alloc   SeqAllocator
	wait    time.Duration
	metrics *metrics
}

var _ migv1.SeqService = (*seqService)(nil)

// NextSeq implements migv1.SeqService.
func (s *seqService) NextSeq(ctx context.Context, req *migv1.NextSeqRequest) (*migv1.NextSeqResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	v, err := s.alloc.Next(ctx, req.Uid)
	if err != nil {
		return nil, twirpError(err)
	}
	s.metrics.seqsIssued.Inc()
	return &migv1.NextSeqResponse{Seq: v, Routing: s.routingFor(req.RoutingVersion)}, nil
}

// NextSeqs implements migv1.SeqService.
func (s *seqService) NextSeqs(ctx context.Context, req *migv1.NextSeqsRequest) (*migv1.NextSeqsResponse, error) {
	if len(req.Uids) == 0 {
		return nil, twirpError(&argError{field: "uids", msg: "uids is empty: name at least one uid"})
	}
	ctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	vs, err := s.alloc.NextBatch(ctx, req.Uids)
	if err != nil {
		return nil, twirpError(err)
	}
	s.metrics.seqsIssued.Add(float64(len(vs)))
	return &migv1.NextSeqsResponse{Seqs: vs, Routing: s.routingFor(req.RoutingVersion)}, nil
}

// CurSeq implements migv1.SeqService.
func (s *seqService) CurSeq(ctx context.Context, req *migv1.CurSeqRequest) (*migv1.CurSeqResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, s.wait)
	defer cancel()
	v, err := s.alloc.Current(ctx, req.Uid)
	if err != nil {
		return nil, twirpError(err)
	}
	return &migv1.CurSeqResponse{Seq: v, Routing: s.routingFor(req.RoutingVersion)}, nil
}

// routingFor returns the current table for a client that knows version
// known, or nil if that is current.
func (s *seqService) routingFor(known uint64) *migv1.Routing {
	if r := s.alloc.Routing(); r.Version > known {
		return routingToProto(r)
	}
	return nil
}
