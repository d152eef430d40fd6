package rpc

import (
	"context"
	"fmt"
	"slices"

	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migv1"
)

// MaxCount is the most IDs one NextIDs call may ask for. It bounds what one
// request costs: 100,000 IDs are about 0.9 MB of protobuf or 2.2 MB of
// JSON. It is below mig.MaxBatch, one tick's worth, so a single request
// never needs more than two ticks. The limit is the protocol's
// (migv1.MaxCount), which the client checks too.
const MaxCount = migv1.MaxCount

// timeLayout is RFC 3339 in UTC with exactly three fractional digits: a
// tick is 10 ms, so milliseconds show all of it.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// IDIssuer is what the server needs from the worker: *workerid.Worker
// implements it. Implementations must be safe for concurrent use.
type IDIssuer interface {
	// NextN reserves n new IDs, 1 <= n <= MaxCount. Every error it returns
	// must mean that nothing was reserved. A refusal to issue now wraps
	// workerid.ErrUnavailable (every one of *workerid.Worker's does): the
	// server answers it with unavailable and retryable.
	NextN(n int) (mig.Batch, error)
	// Layout is the ID layout the issuer issues in; Decode uses it.
	Layout() mig.Layout
	// Datacenter names the issuer's datacenter.
	Datacenter() string
}

// idService implements migv1.IDService by translating between the wire
// and the IDIssuer; it decides nothing itself. Safe for concurrent use.
type idService struct {
	issuer  IDIssuer
	metrics *metrics
}

var _ migv1.IDService = (*idService)(nil)

// NextIDs implements migv1.IDService.
func (s *idService) NextIDs(ctx context.Context, req *migv1.NextIDsRequest) (*migv1.NextIDsResponse, error) {
	return answer(ctx, req, s.nextIDs)
}

// nextIDs fills resp with req's answer: NextIDs for the fast route, which
// reuses resp and its Ids' memory.
func (s *idService) nextIDs(_ context.Context, req *migv1.NextIDsRequest, resp *migv1.NextIDsResponse) error {
	n := 1
	if req.Count != nil {
		// Checked here, before NextN, so that bad input never reaches the
		// issuer and the message names the wire field and its limit.
		if err := checkCount(int64(*req.Count)); err != nil {
			return twirpError(err)
		}
		n = int(*req.Count)
	}
	b, err := s.issuer.NextN(n)
	if err != nil {
		return twirpError(err)
	}
	s.metrics.issued(b.Len())
	// The worker ID is read from the IDs themselves, not asked of the
	// issuer afterwards: a re-claim in between could make the two differ.
	p, err := s.issuer.Layout().Decompose(b.First())
	if err != nil {
		return twirpError(err)
	}
	resp.Ids = appendIDs(resp.Ids[:0], b)
	resp.WorkerId = p.Worker
	resp.Datacenter = s.issuer.Datacenter()
	return nil
}

// answer is a generated interface's method on a fill-style one: it
// answers req with a new response that fill completes. Every error goes
// through twirpError, as on the fast routes, whatever path made it.
func answer[Req, Resp any](ctx context.Context, req *Req, fill func(context.Context, *Req, *Resp) error) (*Resp, error) {
	resp := new(Resp)
	if err := fill(ctx, req, resp); err != nil {
		return nil, twirpError(err)
	}
	return resp, nil
}

// appendIDs appends b's IDs to dst run by run.
func appendIDs(dst []uint64, b mig.Batch) []uint64 {
	dst = slices.Grow(dst, b.Len())
	var runs [2]mig.Run // a batch of at most mig.MaxBatch IDs has at most 2
	for _, r := range b.Runs(runs[:0]) {
		for i := range uint64(r.Count) {
			dst = append(dst, uint64(r.First)+i)
		}
	}
	return dst
}

// Decode implements migv1.IDService.
func (s *idService) Decode(ctx context.Context, req *migv1.DecodeRequest) (*migv1.DecodeResponse, error) {
	return answer(ctx, req, s.decode)
}

func (s *idService) decode(_ context.Context, req *migv1.DecodeRequest, resp *migv1.DecodeResponse) error {
	if req.Id == nil {
		// Absent, not 0: id is optional in mig.proto so that the two
		// differ, and an empty request is not taken for ID 0.
		return &argError{field: "id", msg: "id is missing: name the ID to decode (in JSON a decimal string, like {\"id\":\"144955148075010\"})"}
	}
	l := s.issuer.Layout()
	id := mig.ID(*req.Id)
	p, err := l.Decompose(id)
	if err != nil {
		return &argError{
			field: "id",
			msg:   fmt.Sprintf("id %d has the sign bit set (IDs are below 2^63)", *req.Id),
			cause: err,
		}
	}
	resp.Id = *req.Id
	resp.Time = l.TickTime(p.Tick).Format(timeLayout)
	resp.Tick = p.Tick
	resp.Worker = p.Worker
	resp.Seq = p.Seq
	return nil
}

// checkCount returns an *argError unless 1 <= n <= MaxCount. The client
// runs the same check so that it never sends what the server refuses.
func checkCount(n int64) error {
	if n < 1 || n > MaxCount {
		return &argError{field: "count", msg: fmt.Sprintf("count %d is not in 1..%d", n, MaxCount)}
	}
	return nil
}
