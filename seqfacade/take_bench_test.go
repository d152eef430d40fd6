package seqfacade

import (
	"context"
	"sync"
	"sync/atomic"
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

// TestCountersDensify: a section's offsets stay right through the switch
// from sparse maps to the dense array, with takers racing it.
func TestCountersDensify(t *testing.T) {
	c := newCounters(2000)
	var limit atomic.Uint64
	limit.Store(1 << 40)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range uint64(2000) {
				if (i+uint64(w))%3 == 0 {
					c.take(i, &limit)
				}
			}
		})
	}
	wg.Wait()
	if c.dense.Load() == nil {
		t.Fatal("still sparse with every uid touched")
	}
	for i := range uint64(2000) {
		want := uint64(0)
		for w := range uint64(4) {
			if (i+w)%3 == 0 {
				want++
			}
		}
		if got := c.get(i); got != want {
			t.Fatalf("uid %d: offset %d, want %d", i, got, want)
		}
	}
	limit.Store(0)
	if _, ok := c.take(5, &limit); ok {
		t.Fatal("took past the limit")
	}
}
