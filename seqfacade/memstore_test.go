package seqfacade_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/seqfacade"
)

// memStore is an in-memory Store for the allocator's logic, with the
// semantics the etcd store has: a revision per group, writes refused
// (ErrNotOwner) when the revision moved or the proof names another
// owner, and injected failures of unknown outcome, applied or not. It
// fails the test if any section's max_seq ever goes down.
type memStore struct {
	t          testing.TB
	sectionsIn func(g int) int
	mu         sync.Mutex
	rev        int64
	groups     map[int]seqfacade.GroupState
	owner      string // the proof value writes must carry
	fail       failure
	saves      int
}

type failure int

const (
	noFailure  failure = iota
	failBefore         // the write is lost, the caller cannot tell
	failAfter          // the write happens, the caller cannot tell
)

var errUnknown = errors.New("memstore: injected failure: outcome unknown")

const proofKey = "test/owner"

var _ seqfacade.Store = (*memStore)(nil)

func (s *memStore) Load(ctx context.Context, g int, proof []clientv3.Cmp) (seqfacade.GroupState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkProof(proof); err != nil {
		return seqfacade.GroupState{}, err
	}
	st, ok := s.groups[g]
	if !ok {
		return seqfacade.GroupState{MaxSeqs: make([]uint64, s.sectionsIn(g))}, nil
	}
	return seqfacade.GroupState{MaxSeqs: slices.Clone(st.MaxSeqs), Revision: st.Revision}, nil
}

func (s *memStore) Save(ctx context.Context, g int, maxSeqs []uint64, expect int64, proof []clientv3.Cmp) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if err := s.checkProof(proof); err != nil {
		return 0, err
	}
	old := s.groups[g]
	if old.Revision != expect {
		return 0, fmt.Errorf("%w: revision %d, expected %d", seqfacade.ErrNotOwner, old.Revision, expect)
	}
	f := s.fail
	s.fail = noFailure
	if f == failBefore {
		return 0, errUnknown
	}
	for i, m := range old.MaxSeqs {
		if maxSeqs[i] < m {
			s.t.Errorf("group %d section %d: max_seq written down from %d to %d", g, i, m, maxSeqs[i])
		}
	}
	s.rev++
	s.groups[g] = seqfacade.GroupState{MaxSeqs: slices.Clone(maxSeqs), Revision: s.rev}
	if f == failAfter {
		return 0, errUnknown
	}
	return s.rev, nil
}

// checkProof refuses a proof naming another owner than the store's.
func (s *memStore) checkProof(proof []clientv3.Cmp) error {
	for _, c := range proof {
		if string(c.KeyBytes()) == proofKey && string(c.ValueBytes()) != s.owner {
			return fmt.Errorf("%w: proof %s, owner %s: %w", seqfacade.ErrNotOwner, c.ValueBytes(), s.owner, seqfacade.ErrProofFailed)
		}
	}
	return nil
}

func (s *memStore) max(g, local int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.groups[g]; ok {
		return st.MaxSeqs[local]
	}
	return 0
}

func (s *memStore) inject(f failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = f
}

func (s *memStore) setOwner(o string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owner = o
}

// testOwner is an Ownership whose one claim lasts until end.
type testOwner struct {
	mu    sync.Mutex
	claim *testClaim
}

type testClaim struct {
	id   string
	done chan struct{}
	once sync.Once
	// With clk set, the claim's deadline is deadline on clk's monotonic
	// clock, whatever Done says: a fence goroutine that is late.
	clk      *clock.Manual
	deadline time.Duration
}

var (
	_ seqfacade.Ownership = (*testOwner)(nil)
	_ seqfacade.Claim     = (*testClaim)(nil)
)

func newTestOwner(id string) *testOwner {
	return &testOwner{claim: &testClaim{id: id, done: make(chan struct{})}}
}

func (o *testOwner) Claim(int) (seqfacade.Claim, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.claim.done:
		return nil, fmt.Errorf("%w: test claim %s ended", seqfacade.ErrUnavailable, o.claim.id)
	default:
		return o.claim, nil
	}
}

func (o *testOwner) Ready() error {
	_, err := o.Claim(0)
	return err
}

func (o *testOwner) end() { o.claim.end() }

func (c *testClaim) Proof() []clientv3.Cmp {
	return []clientv3.Cmp{clientv3.Compare(clientv3.Value(proofKey), "=", c.id)}
}
func (c *testClaim) Done() <-chan struct{} { return c.done }
func (c *testClaim) end()                  { c.once.Do(func() { close(c.done) }) }

func (c *testClaim) Headroom() time.Duration {
	select {
	case <-c.done:
		return 0
	default:
	}
	if c.clk != nil {
		return c.deadline - c.clk.Mono()
	}
	return time.Hour
}
