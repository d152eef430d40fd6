package seqfacade

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
)

// finalStore is an in-memory Store of one-section groups whose writes
// compare the group's revision.
type finalStore struct {
	mu   sync.Mutex
	m    map[int]GroupState
	next int64
	gate chan struct{} // if set, each write waits for a receive from it
}

func (s *finalStore) Load(_ context.Context, g int, _ []clientv3.Cmp) (GroupState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[g]; ok {
		return GroupState{MaxSeqs: slices.Clone(st.MaxSeqs), Revision: st.Revision}, nil
	}
	return GroupState{MaxSeqs: make([]uint64, 1)}, nil
}

func (s *finalStore) Save(_ context.Context, g int, maxSeqs []uint64, expect int64, _ []clientv3.Cmp) (int64, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[g].Revision != expect {
		return 0, ErrNotOwner
	}
	s.next++
	s.m[g] = GroupState{MaxSeqs: slices.Clone(maxSeqs), Revision: s.next}
	return s.next, nil
}

// claimOwner hands out its current claim for every group, or, once
// moved, sends callers to node b.
type claimOwner struct {
	mu    sync.Mutex
	c     *routedClaim
	moved bool
}

func (o *claimOwner) Claim(g int) (Claim, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.moved {
		return nil, &NotOwnerError{Group: g, Owner: "b", Address: "b:1"}
	}
	return o.c, nil
}
func (o *claimOwner) Ready() error { return nil }
func (o *claimOwner) set(c *routedClaim) {
	o.mu.Lock()
	o.c = c
	o.mu.Unlock()
}

// finalNode is a node of one-section groups, in tenure tA under claim
// c1, over an in-memory store.
func finalNode(t *testing.T, tA tenure) (*Node, *claimOwner, clock.Source) {
	n, own, src, _ := finalNodeOn(t, tA, &finalStore{m: map[int]GroupState{}})
	return n, own, src
}

// finalNodeOn is finalNode over store.
func finalNodeOn(t *testing.T, tA tenure, store *finalStore) (*Node, *claimOwner, clock.Source, *finalStore) {
	t.Helper()
	src := clock.NewReal()
	own := &claimOwner{c: newRoutedClaim(src, 0, tA, src.Mono()+time.Hour, nil)}
	n, err := New(t.Context(), Config{NodeName: "a", SectionSize: 10, GroupSize: 1, UIDLimit: 100, Step: 100}, store, own, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.WithoutCancel(t.Context())) })
	return n, own, src, store
}

// stalledKill ends g's claim with end (the node's watcher of the claim
// then unloads g in the background) with g's section 0's shard 0 locked,
// so that the unload stops where it reads the section's highest offset;
// it returns once g is out of the node's table, and the function that
// lets the unload finish and waits for its final to be recorded. The
// shard is locked before the claim ends: the node's own unload may start
// at once.
func stalledKill(t *testing.T, n *Node, g *group, end func()) func() {
	t.Helper()
	if g == nil {
		t.Fatal("no group to unload")
	}
	sec := n.sections[g.first].Load()
	sec.cur.shards[0].mu.Lock()
	end()
	for n.groups[g.idx].Load() == g {
		<-n.src.After(time.Millisecond)
	}
	return func() {
		sec.cur.shards[0].mu.Unlock()
		if g.unload != nil {
			<-g.unload.done
		}
	}
}

// TestPulledStateLatestInstance: a direct handoff gives the state of the
// group's latest instance, never an older one's. Instance 1 is unloaded
// (its claim ended: a lease lapse) and its final is recorded only after
// instance 2, of the same tenure, was loaded and handed out more; then
// the tenure ends while instance 2's unload is under way when the next
// owner asks: the answer waits for it and floors above instance 2's
// values. (An older build stored finals by group, so the late final of
// instance 1 was taken: the next owner would have served 4 after 101.)
func TestPulledStateLatestInstance(t *testing.T) {
	tA := tenure{Node: "a", Reg: 7, Since: 3}
	n, own, src := finalNode(t, tA)
	const uid = 1
	for range 3 {
		if _, err := n.Next(t.Context(), uid); err != nil {
			t.Fatal(err)
		}
	}
	c1 := own.c
	own.set(newRoutedClaim(src, 0, tA, src.Mono()+time.Hour, nil)) // resumed: a fresh claim, same tenure
	finish1 := stalledKill(t, n, n.groups[0].Load(), c1.end)
	v2, err := n.Next(t.Context(), uid) // instance 2
	if err != nil || v2 <= 100 {
		t.Fatalf("instance 2: %d, %v", v2, err)
	}
	finish1() // instance 1's final, recorded late

	finish2 := stalledKill(t, n, n.groups[0].Load(), own.c.end) // the tenure ends
	type answer struct {
		hs *handoffState
		ok bool
	}
	got := make(chan answer, 1)
	go func() {
		hs, ok := n.pulledState(0, tA)
		got <- answer{hs, ok}
	}()
	select {
	case a := <-got:
		t.Fatalf("answered before instance 2's unload was recorded: %+v", a)
	case <-n.src.After(50 * time.Millisecond):
	}
	finish2()
	a := <-got
	if !a.ok || a.hs.floor[0] < v2 || a.hs.max[0] < a.hs.floor[0] {
		t.Fatalf("pulled state %+v, %v: want a floor at or above %d, handed out by instance 2", a.hs, a.ok, v2)
	}
	if _, ok := n.handoffState(0); ok {
		t.Fatal("the state was given twice: to the direct handoff and to the release")
	}
}

// TestTakeFinalLeavesLiveTenure: a group whose claim has not ended (its
// right lapsed, and a confirmation may extend it again) is neither
// unloaded nor handed off by a late release of an older tenure.
func TestTakeFinalLeavesLiveTenure(t *testing.T) {
	tA := tenure{Node: "a", Reg: 7, Since: 3}
	n, own, src := finalNode(t, tA)
	own.set(newRoutedClaim(src, 0, tA, src.Mono()+50*time.Millisecond, nil))
	if _, err := n.Next(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	<-src.After(60 * time.Millisecond) // the right lapsed, the claim not ended
	if _, ok := n.handoffState(0); ok {
		t.Fatal("a release took the state of a group whose claim goes on")
	}
	if g := n.groups[0].Load(); g == nil || g.dead.Load() {
		t.Fatal("a release unloaded a group whose claim goes on")
	}
}

// TestNoFinalAfterAnotherWriter: a group unloaded because its key
// changed under this node (another writer: an operator's forced raise)
// leaves no final state to hand over: what this node persisted last is
// not what the group holds. One unloaded because a table moved it (its
// proof failed) does.
func TestNoFinalAfterAnotherWriter(t *testing.T) {
	tA := tenure{Node: "a", Reg: 7, Since: 3}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w: changed under this node", ErrNotOwner), false},
		{fmt.Errorf("%w: %w", ErrNotOwner, ErrProofFailed), true},
	} {
		n, own, _ := finalNode(t, tA)
		if _, err := n.Next(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		n.groups[0].Load().kill(tc.err)
		own.c.end()
		if _, ok := n.pulledState(0, tA); ok != tc.want {
			t.Errorf("unloaded for %v: a final to hand over %v, want %v", tc.err, ok, tc.want)
		}
	}
}

// TestMovedWhileExtending: a call waiting for a max_seq write when its
// group moves away is sent to the new owner (a *NotOwnerError), as a
// call whose claim lapsed is, not answered unavailable: a drain or a
// balance move must not fail the calls that happen to wait on a write.
func TestMovedWhileExtending(t *testing.T) {
	tA := tenure{Node: "a", Reg: 7, Since: 3}
	store := &finalStore{m: map[int]GroupState{}}
	n, own, _, _ := finalNodeOn(t, tA, store)
	const uid = 1
	if _, err := n.Next(t.Context(), uid); err != nil { // loaded: max_seq 100
		t.Fatal(err)
	}
	gate := make(chan struct{})
	store.mu.Lock()
	store.gate = gate
	store.mu.Unlock()
	for range 99 { // up to the ceiling; the prefetch's write waits at the gate
		if _, err := n.Next(t.Context(), uid); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan error, 1)
	go func() {
		_, err := n.Next(t.Context(), uid)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a call past the ceiling did not wait for the write: %v", err)
	case <-n.src.After(50 * time.Millisecond):
	}
	own.mu.Lock()
	own.moved = true
	own.mu.Unlock()
	own.c.end()
	close(gate) // the write succeeds, after the claim ended
	err := <-got
	var no *NotOwnerError
	if !errors.As(err, &no) || errors.Is(err, ErrUnavailable) || no.Owner != "b" {
		t.Fatalf("the waiting call got %v, want a *NotOwnerError naming b", err)
	}
}
