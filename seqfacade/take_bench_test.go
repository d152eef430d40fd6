package seqfacade

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
)

// zeroStore persists nothing: enough to measure the allocator alone.
type zeroStore struct{ lay layout }

func (s zeroStore) Load(_ context.Context, g int, _ []clientv3.Cmp) (GroupState, error) {
	return GroupState{MaxSeqs: make([]uint64, s.lay.sectionsIn(g))}, nil
}

func (zeroStore) Save(_ context.Context, _ int, _ []uint64, expect int64, _ []clientv3.Cmp) (int64, error) {
	return expect + 1, nil
}

// foreverClaim never ends and reads no clock.
type foreverClaim struct{}

func (*foreverClaim) Proof() []clientv3.Cmp   { return nil }
func (*foreverClaim) Done() <-chan struct{}   { return nil }
func (*foreverClaim) Headroom() time.Duration { return time.Hour }
func (*foreverClaim) Claim(int) (Claim, error) {
	return &foreverClaim{}, nil
}
func (*foreverClaim) Ready() error { return nil }

// BenchmarkAllocator splits Next's cost: the take alone (atomics and the
// CAS), and Next under a claim whose deadline check reads no clock. Next
// on a node from Start also reads the clock once per call
// (BenchmarkNext).
func BenchmarkAllocator(b *testing.B) {
	cfg := Config{Step: MaxStep}.withDefaults()
	own := &foreverClaim{}
	n, err := New(b.Context(), cfg, zeroStore{newLayout(cfg)}, own, clock.NewReal())
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(b.Context())
	if _, err := n.Next(b.Context(), 1); err != nil {
		b.Fatal(err)
	}
	s := n.sections[0].Load()
	b.Run("take", func(b *testing.B) {
		for b.Loop() {
			n.take(s, 1)
		}
	})
	b.Run("next-clockless-claim", func(b *testing.B) {
		for b.Loop() {
			if _, err := n.Next(b.Context(), 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
