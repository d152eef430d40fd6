package lease_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/faultproxy"
	"github.com/migsvc/mig/internal/lease"
)

var fast = lease.Config{TTL: 2 * time.Second, Margin: 500 * time.Millisecond, RequestTimeout: 300 * time.Millisecond}

func grant(t *testing.T, cli *clientv3.Client, src clock.Source) *lease.Lease {
	t.Helper()
	l, err := lease.Grant(t.Context(), cli, src, fast)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.WithoutCancel(t.Context())) })
	return l
}

// proxied returns a fault proxy to the etcd at endpoint and a client
// through it, both closed when the test ends.
func proxied(t *testing.T, endpoint string) (*faultproxy.Proxy, *clientv3.Client) {
	t.Helper()
	p, err := faultproxy.New(strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, etcdtest.Client(t, "http://"+p.Addr())
}

func put(t *testing.T, cli *clientv3.Client, key string, l *lease.Lease) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, "x", clientv3.WithLease(l.ID())); err != nil {
		t.Fatal(err)
	}
}

func TestRenewalKeepsTheLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	l := grant(t, cli, src)
	if l.TTL() < 2*time.Second {
		t.Fatalf("granted TTL %v", l.TTL())
	}
	<-src.After(2 * l.TTL())
	if !l.Valid() || l.Err() != nil {
		t.Fatalf("lease not valid after two TTLs of renewals: %v", l.Err())
	}
	if h := l.Headroom(); h <= 0 || h > l.TTL()-fast.Margin {
		t.Fatalf("headroom %v outside (0, TTL-margin]", h)
	}
	if s := l.Stats(); s.Renewals < 4 {
		t.Fatalf("%d renewals in two TTLs, want at least 4", s.Renewals)
	}
}

// TestDeadlineBeforeServerExpiry cuts the holder from etcd: its lease ends
// (Done, ErrExpired) before etcd deletes the keys the lease carries.
func TestDeadlineBeforeServerExpiry(t *testing.T) {
	srv := etcdtest.Start(t)
	direct := etcdtest.Client(t, srv.Endpoints()...)
	p, err := faultproxy.New(strings.TrimPrefix(srv.Endpoints()[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	cli := etcdtest.Client(t, "http://"+p.Addr())
	src := clock.NewReal()
	l := grant(t, cli, src)
	put(t, direct, "/k", l)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(t.Context()))
	defer cancel()
	watch := direct.Watch(wctx, "/k")
	<-src.After(time.Second)
	p.Cut()

	var ended, deleted time.Duration
	for deleted == 0 {
		select {
		case <-l.Done():
			if ended == 0 {
				ended = src.Mono()
			}
		case wr := <-watch:
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					deleted = src.Mono()
				}
			}
		case <-src.After(10 * time.Second):
			t.Fatal("etcd never expired the lease")
		}
	}
	if ended == 0 || ended >= deleted {
		t.Fatalf("lease ended at %v, etcd deleted its key at %v", ended, deleted)
	}
	if !errors.Is(l.Err(), lease.ErrExpired) || l.Valid() {
		t.Fatalf("Err = %v, Valid = %v", l.Err(), l.Valid())
	}
	t.Logf("fenced %v before etcd expired the lease", deleted-ended)
}

func TestRevokedElsewhereEndsTheLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	l := grant(t, cli, src)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := cli.Revoke(ctx, l.ID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-src.After(l.TTL()):
		t.Fatal("revoked lease still live")
	}
	if !errors.Is(l.Err(), lease.ErrGone) {
		t.Fatalf("Err = %v, want ErrGone", l.Err())
	}
	// Ended before its deadline: Valid must not pass on the deadline
	// alone (nor on its counter window, on the host's clock).
	if l.Valid() || !l.Fence().Ended() || l.Fence().Live() {
		t.Fatalf("revoked lease: Valid %v, Fence ended %v", l.Valid(), l.Fence().Ended())
	}
}

func TestCloseRevokes(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	l := grant(t, cli, clock.NewReal())
	put(t, cli, "/k", l)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !errors.Is(l.Err(), lease.ErrClosed) {
		t.Fatalf("Err = %v, want ErrClosed", l.Err())
	}
	if l.Valid() {
		t.Fatal("closed lease still valid")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if r, err := cli.Get(ctx, "/k"); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("key still there after Close (%v)", err)
	}
}

// TestFenceAtTheDeadlineOnAManualClock shows the deadline arithmetic at
// its edges: the lease is valid one nanosecond before grant-send + TTL -
// margin and ends at it, on the holder's own monotonic clock, however
// long the grant took to come back.
func TestFenceAtTheDeadlineOnAManualClock(t *testing.T) {
	srv := etcdtest.Start(t)
	m := clock.NewManual(time.Unix(1_700_000_000, 0))
	p, cli := proxied(t, srv.Endpoints()[0])
	l := grant(t, cli, m)
	want := l.TTL() - fast.Margin // granted at manual time 0
	if l.Deadline() != want {
		t.Fatalf("deadline %v, want %v", l.Deadline(), want)
	}
	p.Cut() // no renewal will be acknowledged
	m.Advance(want - time.Nanosecond)
	if !l.Valid() {
		t.Fatal("invalid one nanosecond before the deadline")
	}
	m.Advance(time.Nanosecond)
	if l.Valid() {
		t.Fatal("still valid at the deadline")
	}
	select {
	case <-l.Done():
	case <-clock.NewReal().After(5 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(l.Err(), lease.ErrExpired) {
		t.Fatalf("Err = %v", l.Err())
	}
}

// TestResumeAfterTheDeadline: a holder whose deadline passed while
// renewals went unanswered (on its manual clock: etcd's lease is still
// alive) resumes the same lease, with what it carries, and a deadline
// counting from the resuming renewal's send; a lease etcd revoked is
// ErrGone.
func TestResumeAfterTheDeadline(t *testing.T) {
	srv := etcdtest.Start(t)
	m := clock.NewManual(time.Unix(1_700_000_000, 0))
	p, cli := proxied(t, srv.Endpoints()[0])
	l := grant(t, cli, m)
	put(t, cli, "/k", l)
	p.Cut()
	m.Advance(l.TTL())
	select {
	case <-l.Done():
	case <-clock.NewReal().After(5 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	if _, err := lease.Resume(t.Context(), cli, m, fast, l.ID()); err == nil {
		t.Fatal("Resume succeeded with etcd cut off")
	}
	p.Restore()
	m.Advance(time.Second)
	sent := m.Mono()
	r, err := lease.Resume(t.Context(), cli, m, fast, l.ID())
	if err != nil {
		t.Fatalf("Resume of a lease etcd still holds: %v", err)
	}
	t.Cleanup(func() { _ = r.Close(context.WithoutCancel(t.Context())) })
	if r.ID() != l.ID() || !r.Valid() || r.Deadline() != sent+r.TTL()-fast.Margin {
		t.Fatalf("resumed: id %x (was %x), valid %v, deadline %v, want %v", r.ID(), l.ID(), r.Valid(), r.Deadline(), sent+r.TTL()-fast.Margin)
	}
	direct := etcdtest.Client(t, srv.Endpoints()...)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if g, err := direct.Get(ctx, "/k"); err != nil || len(g.Kvs) != 1 || g.Kvs[0].Lease != int64(l.ID()) {
		t.Fatalf("the key under the resumed lease: %v, %v", g, err)
	}
	if _, err := direct.Revoke(ctx, l.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Resume(t.Context(), cli, m, fast, l.ID()); !errors.Is(err, lease.ErrGone) {
		t.Fatalf("Resume of a revoked lease: %v, want ErrGone", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []lease.Config{
		{TTL: time.Second},
		{TTL: 4 * time.Second, Margin: 2 * time.Second},
		{Margin: -1},
		{TTL: 3 * time.Second, RequestTimeout: 2 * time.Second},
	} {
		if err := c.Validate(); !errors.Is(err, lease.ErrConfig) {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
	}
	if err := (lease.Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestLastRenewal: the grant is the first renewal; each acknowledged
// renewal closes the channel of the one before and reports a later send
// time, no later than the deadline's origin.
func TestLastRenewal(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	src := clock.NewReal()
	before := src.Mono()
	l := grant(t, cli, src)
	r, next := l.LastRenewal()
	if r.Sent < before || r.Sent > src.Mono() || r.TTL != l.TTL() {
		t.Fatalf("grant: %+v, granted TTL %v, asked at %v", r, l.TTL(), before)
	}
	for range 2 {
		select {
		case <-next:
		case <-src.After(l.TTL()):
			t.Fatal("no renewal within a TTL")
		}
		r2, next2 := l.LastRenewal()
		if r2.Sent <= r.Sent || r2.TTL != l.TTL() {
			t.Fatalf("renewal %+v after %+v", r2, r)
		}
		if d := l.Deadline(); d < r2.Sent+r2.TTL-fast.Margin {
			t.Fatalf("deadline %v before the last renewal's %v", d, r2.Sent+r2.TTL-fast.Margin)
		}
		r, next = r2, next2
	}
}
