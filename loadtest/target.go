package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migclient"
)

// IDClient asks for message IDs; *migclient.Client is one. Implementations
// must be safe for concurrent use: every load client calls the same one.
type IDClient interface {
	// NextIDs returns count IDs and where they came from.
	NextIDs(ctx context.Context, count int) ([]mig.ID, migclient.Origin, error)
}

var _ IDClient = (*migclient.Client)(nil)

// SeqClient advances per-user sequences: the Go client of SeqService.
// Implementations must be safe for concurrent use.
type SeqClient interface {
	// NextSeq advances uid's sequence and returns its new value.
	NextSeq(ctx context.Context, uid uint64) (uint64, error)
	// NextSeqs advances the sequence of every uid and returns the new
	// values, in the order of uids.
	NextSeqs(ctx context.Context, uids []uint64) ([]uint64, error)
}

// Targets are the clients Run puts load on. Only the mode's client is
// needed. A plain value; the clients in it must be safe for concurrent
// use.
type Targets struct {
	// IDs serves every load client of ModeIDs, unless IDsEach is set.
	IDs IDClient
	// IDsEach, when not empty, gives load client k of ModeIDs the client
	// IDsEach[k % len(IDsEach)] instead. A Go client stays on the
	// endpoint that last answered it, so one client shared by every load
	// client puts the whole load on one server; mig loadtest gives each
	// endpoint of --target a client that starts there.
	IDsEach []IDClient
	Seq     SeqClient
}

// session is one load client's view of the target: it sends a request,
// then records the answer it got. Not safe for concurrent use.
type session interface {
	// send makes one request and returns how many values it brought.
	send(ctx context.Context) (int, error)
	// record gives the last successful answer to the checker.
	record(ck *Checker, client int, call, ret time.Duration) error
	// endpoint names the server of the last answer, if known.
	endpoint() string
	close()
}

// idSession asks MIG for IDs.
type idSession struct {
	c      IDClient
	batch  int
	ids    []mig.ID
	origin migclient.Origin
}

func (s *idSession) send(ctx context.Context) (int, error) {
	var err error
	s.ids, s.origin, err = s.c.NextIDs(ctx, s.batch)
	return len(s.ids), err
}

func (s *idSession) record(ck *Checker, client int, call, ret time.Duration) error {
	return ck.RecordIDs(IDAnswer{Client: client, Server: Server{Endpoint: s.origin.Endpoint, WorkerID: s.origin.WorkerID}, Call: call, Return: ret, IDs: s.ids})
}

func (s *idSession) endpoint() string { return s.origin.Endpoint }
func (s *idSession) close()           {}

// seqSession asks MIG to advance sequences.
type seqSession struct {
	c    SeqClient
	uids []uint64
	seqs []uint64
	one  [1]uint64
	smp  *sampler
}

func (s *seqSession) send(ctx context.Context) (int, error) {
	s.smp.fill(s.uids)
	if len(s.uids) == 1 {
		v, err := s.c.NextSeq(ctx, s.uids[0])
		s.one[0], s.seqs = v, s.one[:]
		return 1, err
	}
	var err error
	s.seqs, err = s.c.NextSeqs(ctx, s.uids)
	return len(s.seqs), err
}

func (s *seqSession) record(ck *Checker, client int, call, ret time.Duration) error {
	return ck.RecordSeqs(SeqAnswer{Client: client, Call: call, Return: ret, UIDs: s.uids, Seqs: s.seqs})
}

func (s *seqSession) endpoint() string { return "" }
func (s *seqSession) close()           {}

// redisSession runs the same requests as INCR and INCRBY on Redis: an ID
// batch of n is INCRBY n on one key (the n values up to the new one), a
// sequence batch is one INCR per uid's key, pipelined. It holds one
// connection, dialed when first needed and again after an error.
type redisSession struct {
	clk     clock.Source
	addr    string
	timeout time.Duration
	conn    *respConn
	prefix  string
	mode    Mode
	batch   int
	smp     *sampler // ModeSeq
	keys    []string
	out     []int64
	ids     []mig.ID
	uids    []uint64
	seqs    []uint64
}

func newRedisSession(c Config, smp *sampler) *redisSession {
	s := &redisSession{clk: c.Clock, addr: c.RedisAddr, timeout: c.Timeout, prefix: c.RedisPrefix, mode: c.Mode, batch: c.Batch, smp: smp}
	if c.Mode == ModeIDs {
		s.keys, s.out, s.ids = []string{c.RedisPrefix + "ids"}, make([]int64, 1), make([]mig.ID, 0, c.Batch)
	} else {
		s.keys, s.out = make([]string, c.Batch), make([]int64, c.Batch)
		s.uids, s.seqs = make([]uint64, c.Batch), make([]uint64, c.Batch)
	}
	return s
}

func (s *redisSession) send(ctx context.Context) (int, error) {
	if s.conn == nil {
		conn, err := dialRESP(ctx, s.clk, s.addr, s.timeout)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", s.endpoint(), err) // named for the report's failures
		}
		s.conn = conn
	}
	by := int64(1)
	if s.mode == ModeIDs {
		by = int64(s.batch)
	} else {
		s.smp.fill(s.uids)
		for i, u := range s.uids {
			s.keys[i] = s.prefix + "seq:" + strconv.FormatUint(u, 10)
		}
	}
	if err := s.conn.incrBy(ctx, s.keys, by, s.out); err != nil {
		s.conn = nil // closed by incrBy
		return 0, fmt.Errorf("%s: %w", s.endpoint(), err)
	}
	if s.mode == ModeIDs {
		s.ids = s.ids[:0]
		for v := s.out[0] - by + 1; v <= s.out[0]; v++ {
			s.ids = append(s.ids, mig.ID(v))
		}
		return len(s.ids), nil
	}
	for i, v := range s.out {
		s.seqs[i] = uint64(v)
	}
	return len(s.seqs), nil
}

func (s *redisSession) record(ck *Checker, client int, call, ret time.Duration) error {
	if s.mode == ModeIDs {
		return ck.RecordIDs(IDAnswer{Client: client, Server: Server{Endpoint: s.endpoint()}, Call: call, Return: ret, IDs: s.ids})
	}
	return ck.RecordSeqs(SeqAnswer{Client: client, Endpoint: s.endpoint(), Call: call, Return: ret, UIDs: s.uids, Seqs: s.seqs})
}

func (s *redisSession) endpoint() string { return "redis://" + s.addr }

func (s *redisSession) close() {
	if s.conn != nil {
		s.conn.close()
	}
}

// Error codes that are not Twirp's.
const (
	CodeBadAnswer = "bad_answer"        // the client refused the answer (migclient.ErrBadAnswer)
	CodeTimeout   = "deadline_exceeded" // no answer in time, outside Twirp
	CodeRedis     = "redis_error"       // Redis answered with an error or broke RESP
	CodeNetwork   = "network"           // the connection failed
	CodeOther     = "other"
)

// errorCode classifies a failed request for the report: its Twirp code
// when the server (or the client, on its behalf) gave one.
func errorCode(err error) string {
	var (
		twerr twirp.Error
		nerr  net.Error
	)
	switch {
	case errors.Is(err, migclient.ErrBadAnswer):
		return CodeBadAnswer
	case errors.As(err, &twerr):
		return string(twerr.Code())
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return CodeTimeout
	case errors.Is(err, ErrRESP):
		return CodeRedis
	case nerr != nil:
		return CodeNetwork
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return CodeNetwork
	}
	return CodeOther
}

// newSessions returns the function that makes client k's session of a
// phase against MIG (redis false) or Redis.
func newSessions(c Config, t Targets, redis bool, seed uint64) (func(k int) session, error) {
	smp := func(k int) *sampler {
		return newSampler(c.Dist, rand.New(rand.NewPCG(seed, uint64(k))))
	}
	switch {
	case redis:
		return func(k int) session {
			var s *sampler
			if c.Mode == ModeSeq {
				s = smp(k)
			}
			return newRedisSession(c, s)
		}, nil
	case c.Mode == ModeIDs:
		for _, ic := range t.IDsEach {
			if ic == nil {
				return nil, fmt.Errorf("%w: a nil IDClient in IDsEach", ErrNoClient)
			}
		}
		if len(t.IDsEach) > 0 {
			return func(k int) session { return &idSession{c: t.IDsEach[k%len(t.IDsEach)], batch: c.Batch} }, nil
		}
		if t.IDs == nil {
			return nil, fmt.Errorf("%w: ids mode needs an IDClient", ErrNoClient)
		}
		return func(int) session { return &idSession{c: t.IDs, batch: c.Batch} }, nil
	default:
		if t.Seq == nil {
			return nil, fmt.Errorf("%w: seq mode needs a SeqClient", ErrNoClient)
		}
		return func(k int) session {
			return &seqSession{c: t.Seq, uids: make([]uint64, c.Batch), smp: smp(k)}
		}, nil
	}
}
