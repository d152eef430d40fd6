package migclient_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade/route"
)

// fakeSeq is a SeqService node of a table of two: the owner of every
// group answers NextSeq and NextSeqs; the other redirects with the table.
type fakeSeq struct {
	migv1.SeqService // the methods a test does not call
	owner            bool
	table            *route.Table
	calls            atomic.Int64
	next             atomic.Uint64
	busy             atomic.Int64 // answers unavailable this many more times
	hangNs           atomic.Int64 // NextSeq answers only after this long
	probes           atomic.Int64 // CurSeq calls
}

// hangFor makes NextSeq answer only after d.
func (f *fakeSeq) hangFor(d time.Duration) { f.hangNs.Store(int64(d)) }

// serveSeq serves svc on loopback until the test ends, and returns its
// host:port.
func serveSeq(t *testing.T, svc migv1.SeqService) string {
	srv := httptest.NewServer(migv1.NewSeqServiceServer(svc))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeSeq) refuse() error {
	return twirp.NewError(twirp.FailedPrecondition, "not the owner").
		WithMeta(migv1.MetaRouting, migv1.RoutingMeta(*f.table))
}

func (f *fakeSeq) NextSeq(ctx context.Context, _ *migv1.NextSeqRequest) (*migv1.NextSeqResponse, error) {
	f.calls.Add(1)
	_ = clock.Sleep(ctx, clock.NewReal(), time.Duration(f.hangNs.Load()))
	if !f.owner {
		return nil, f.refuse()
	}
	return &migv1.NextSeqResponse{Seq: f.next.Add(1)}, nil
}

func (f *fakeSeq) CurSeq(_ context.Context, req *migv1.CurSeqRequest) (*migv1.CurSeqResponse, error) {
	f.probes.Add(1)
	if !f.owner {
		return nil, f.refuse()
	}
	resp := &migv1.CurSeqResponse{Seq: f.next.Load()}
	if req.RoutingVersion < f.table.Version {
		resp.Routing = migv1.NewRouting(*f.table) // as mig serve: to a client behind
	}
	return resp, nil
}

func (f *fakeSeq) NextSeqs(_ context.Context, req *migv1.NextSeqsRequest) (*migv1.NextSeqsResponse, error) {
	f.calls.Add(1)
	if !f.owner {
		return nil, f.refuse()
	}
	if f.busy.Add(-1) >= 0 {
		return nil, twirp.NewError(twirp.Unavailable, "group activating")
	}
	out := make([]uint64, len(req.Uids))
	for i := range out {
		out[i] = f.next.Add(1)
	}
	return &migv1.NextSeqsResponse{Seqs: out}, nil
}

// TestRedirectFollowedAtOnce: a round that learned a newer table (a
// redirect: the group moved, a handoff under way) is followed by the next
// at once, with no backoff: the client's clock stands still, so a wait
// would last until the call's deadline.
func TestRedirectFollowedAtOnce(t *testing.T) {
	t.Parallel()
	table := &route.Table{Version: 7, SectionSize: 10, GroupSize: 2, Groups: 4}
	owner, other := &fakeSeq{owner: true, table: table}, &fakeSeq{table: table}
	ownerAddr, otherAddr := serveSeq(t, owner), serveSeq(t, other)
	table.Routes = []route.Route{{First: 0, Last: 3, Node: "owner", Address: ownerAddr}}

	c, err := migclient.New([]string{otherAddr})
	if err != nil {
		t.Fatal(err)
	}
	migclient.SetClock(c, clock.NewManual(t0))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if v, err := c.NextSeq(ctx, 5); err != nil || v != 1 {
		t.Fatalf("NextSeq through a redirect: %d, %v (a backoff after it would wait on the stopped clock)", v, err)
	}
	if got := c.RoutingVersion(); got != 7 {
		t.Errorf("table learned: version %d, want 7", got)
	}

	// NextSeqs, from a client of the stale node again: its shares learn
	// the table together and the next round follows it at once.
	c2, err := migclient.New([]string{otherAddr})
	if err != nil {
		t.Fatal(err)
	}
	migclient.SetClock(c2, clock.NewManual(t0))
	seqs, err := c2.NextSeqs(ctx, []uint64{1, 25, 39})
	if err != nil || len(seqs) != 3 {
		t.Fatalf("NextSeqs through a redirect: %v, %v", seqs, err)
	}
	if other.calls.Load() != 2 || owner.calls.Load() != 2 {
		t.Errorf("calls: %d to the stale node (want 2: one a client), %d to the owner (want 2)", other.calls.Load(), owner.calls.Load())
	}
}

// barrierSeq owns its groups and answers NextSeqs only once every node of
// the barrier has been asked, or refuses after a second.
type barrierSeq struct {
	fakeSeq
	arrived *atomic.Int64
	all     int64
}

func (b *barrierSeq) NextSeqs(ctx context.Context, req *migv1.NextSeqsRequest) (*migv1.NextSeqsResponse, error) {
	b.arrived.Add(1)
	src := clock.NewReal()
	for end := src.Mono() + time.Second; b.arrived.Load() < b.all; <-src.After(time.Millisecond) {
		if src.Mono() > end {
			return nil, twirp.NewError(twirp.Internal, "the other share never came: shares sent one after the other")
		}
	}
	return b.fakeSeq.NextSeqs(ctx, req)
}

// TestNextSeqsSharesTogether: a batch over two nodes sends both shares at
// once (over sites it costs the farther round trip, not the sum).
func TestNextSeqsSharesTogether(t *testing.T) {
	t.Parallel()
	table := &route.Table{Version: 3, SectionSize: 10, GroupSize: 2, Groups: 4}
	var arrived atomic.Int64
	a := &barrierSeq{fakeSeq: fakeSeq{owner: true, table: table}, arrived: &arrived, all: 2}
	b := &barrierSeq{fakeSeq: fakeSeq{owner: true, table: table}, arrived: &arrived, all: 2}
	table.Routes = []route.Route{
		{First: 0, Last: 1, Node: "a", Address: serveSeq(t, a)},
		{First: 2, Last: 3, Node: "b", Address: serveSeq(t, b)},
	}
	// The client learns the table from a first call (a's answer carries
	// none; a redirect from a non-owner does).
	c, err := migclient.New([]string{serveSeq(t, &fakeSeq{table: table})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NextSeq(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	arrived.Store(0)
	seqs, err := c.NextSeqs(t.Context(), []uint64{1, 25, 45}) // groups 0, 1 (a) and 2 (b)
	if err != nil || len(seqs) != 3 {
		t.Fatalf("NextSeqs over two nodes: %v, %v", seqs, err)
	}
}

// TestNextSeqsBackToBusyOwner: a batch's owner answered unavailable (its
// group activating), so the next round asked another node, which
// redirected back to it with the same table: the owner is asked again
// (forgiven), not the redirecting node until the rounds run out.
func TestNextSeqsBackToBusyOwner(t *testing.T) {
	t.Parallel()
	table := &route.Table{Version: 3, SectionSize: 10, GroupSize: 2, Groups: 4}
	owner, other := &fakeSeq{owner: true, table: table}, &fakeSeq{table: table}
	otherAddr := serveSeq(t, other)
	table.Routes = []route.Route{
		{First: 0, Last: 1, Node: "owner", Address: serveSeq(t, owner)},
		{First: 2, Last: 3, Node: "other", Address: otherAddr},
	}
	c, err := migclient.New([]string{otherAddr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NextSeq(t.Context(), 0); err != nil { // learns the table
		t.Fatal(err)
	}
	owner.busy.Store(1)
	seqs, err := c.NextSeqs(t.Context(), []uint64{1, 5})
	if err != nil || len(seqs) != 2 {
		t.Fatalf("NextSeqs: %v, %v (owner asked %d times, the other node %d)", seqs, err, owner.calls.Load(), other.calls.Load())
	}
}

// TestDeadOwnerSkippedAcrossCalls: an owner that did not answer within
// the attempt's timeout is skipped by the calls that follow for a while
// (they ask the other nodes, which may know a newer table), not paid for
// again by every call; after that while, one call that wants it tries it
// again (a call for another node's uid does not use up the try). The
// client's clock is a manual one: the while passes when the test says.
func TestDeadOwnerSkippedAcrossCalls(t *testing.T) {
	t.Parallel()
	table := &route.Table{Version: 3, SectionSize: 10, GroupSize: 2, Groups: 4}
	dead, other := &fakeSeq{owner: true, table: table}, &fakeSeq{table: table}
	dead.hangFor(300 * time.Millisecond)
	live := &fakeSeq{owner: true, table: table}
	otherAddr := serveSeq(t, other)
	table.Routes = []route.Route{
		{First: 0, Last: 1, Node: "dead", Address: serveSeq(t, dead)},
		{First: 2, Last: 2, Node: "other", Address: otherAddr},
		{First: 3, Last: 3, Node: "live", Address: serveSeq(t, live)},
	}
	c, err := migclient.New([]string{otherAddr}, migclient.WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	src := clock.NewManual(t0)
	migclient.SetClock(c, src)
	call := func() {
		// Fails: only the dead node serves uid 1, and the call's
		// backoff waits on the stopped clock until ctx ends.
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		_, _ = c.NextSeq(ctx, 1)
	}
	call() // learns the table from other's redirect, then times out at dead
	if n := dead.calls.Load(); n != 1 {
		t.Fatalf("first call: %d attempts at the dead owner, want 1", n)
	}
	call()
	call()
	if n := dead.calls.Load(); n != 1 {
		t.Errorf("calls right after: %d attempts at the dead owner in all, want still 1", n)
	}
	src.Advance(time.Second)                              // past the while
	if _, err := c.NextSeq(t.Context(), 65); err != nil { // group 3: live
		t.Fatal(err)
	}
	call()
	if n := dead.calls.Load(); n != 2 {
		t.Errorf("a call after the while: %d attempts at the dead owner in all, want 2 (one try)", n)
	}
}

// TestMissedOwnerRetriedSoon: an owner that missed one attempt and
// answers again is asked again within the rounds of the next call (a
// redirect back to it from a node with the same table is no news, so the
// call waits out the short memory of the miss), not written off for a
// second of failed calls.
func TestMissedOwnerRetriedSoon(t *testing.T) {
	t.Parallel()
	table := &route.Table{Version: 3, SectionSize: 10, GroupSize: 2, Groups: 4}
	owner, other := &fakeSeq{owner: true, table: table}, &fakeSeq{table: table}
	owner.hangFor(300 * time.Millisecond)
	otherAddr := serveSeq(t, other)
	table.Routes = []route.Route{
		{First: 0, Last: 1, Node: "owner", Address: serveSeq(t, owner)},
		{First: 2, Last: 3, Node: "other", Address: otherAddr},
	}
	c, err := migclient.New([]string{otherAddr}, migclient.WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
	_, _ = c.NextSeq(ctx, 1) // the owner misses its attempt
	cancel()
	owner.hangFor(0) // and answers from now on
	if _, err := c.NextSeq(t.Context(), 1); err != nil {
		t.Fatalf("NextSeq once the owner answers again: %v (owner asked %d times, the other node %d)", err, owner.calls.Load(), other.calls.Load())
	}
}

// TestHungOwnerRerouted: an attempt hangs at an owner that swallows
// requests (a datacenter cut off), whose sections have moved to another
// node. The call asks another node of its table after a quarter second,
// learns the move and goes to the new owner, instead of hanging until the
// attempt's timeout (20 s here, past the call's deadline).
func TestHungOwnerRerouted(t *testing.T) {
	t.Parallel()
	before := &route.Table{Version: 3, SectionSize: 10, GroupSize: 2, Groups: 4}
	after := &route.Table{Version: 4, SectionSize: 10, GroupSize: 2, Groups: 4}
	dead, live, seed := &fakeSeq{owner: true, table: before}, &fakeSeq{owner: true, table: after}, &fakeSeq{table: before}
	dead.hangFor(time.Minute)
	deadAddr, liveAddr, seedAddr := serveSeq(t, dead), serveSeq(t, live), serveSeq(t, seed)
	before.Routes = []route.Route{{First: 0, Last: 1, Node: "dead", Address: deadAddr}, {First: 2, Last: 3, Node: "live", Address: liveAddr}}
	after.Routes = []route.Route{{First: 0, Last: 3, Node: "live", Address: liveAddr}}
	c, err := migclient.New([]string{seedAddr}, migclient.WithTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	src := clock.NewManual(t0)
	migclient.SetClock(c, src)
	if _, err := c.CurSeq(t.Context(), 1); err != nil || c.RoutingVersion() != 3 {
		t.Fatalf("CurSeq through the seed's redirect: %v, table %d; want table 3", err, c.RoutingVersion())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.NextSeq(ctx, 1)
		done <- err
	}()
	real := clock.NewReal()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("NextSeq with its owner hung and its sections moved: %v (probes %d)", err, live.probes.Load())
			}
			if dead.calls.Load() != 1 || live.calls.Load() != 1 || c.RoutingVersion() != 4 {
				t.Errorf("attempts: %d at the hung owner, %d at the new one, table %d; want 1, 1, 4", dead.calls.Load(), live.calls.Load(), c.RoutingVersion())
			}
			return
		case <-real.After(20 * time.Millisecond):
			src.Advance(100 * time.Millisecond) // the probes' clock
		}
	}
}
