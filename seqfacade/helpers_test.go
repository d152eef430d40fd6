package seqfacade_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/faultproxy"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/seqfacade"
)

// fastConfig fails over as fast as etcd allows (the shortest lease it
// grants is 2s) and activates after half a second: a confirmation lets a
// node serve 400 ms, and one goes every 125 ms.
func fastConfig(name string) seqfacade.Config {
	return seqfacade.Config{
		NodeName:        name,
		Address:         name + ".test:7000",
		Lease:           lease.Config{TTL: 2 * time.Second, RequestTimeout: 200 * time.Millisecond},
		Margin:          100 * time.Millisecond,
		ActivationDelay: 500 * time.Millisecond,
	}
}

// settled waits until n has loaded every group the table gives it (their
// activation is done, in the background, after Ready).
func settled(t testing.TB, n *seqfacade.Node) {
	t.Helper()
	waitFor(t, "every group loaded", 20*time.Second, func() bool {
		st := n.Stats()
		return st.GroupsOwned > 0 && st.GroupsLoaded == int64(st.GroupsOwned)
	})
}

// ready turns n.Ready into a condition for waitFor.
func ready(n *seqfacade.Node) func() bool { return func() bool { return n.Ready() == nil } }

// start starts a node that Cleanup closes (before its client closes,
// since Cleanup runs in reverse order).
func start(t testing.TB, cli *clientv3.Client, cfg seqfacade.Config, src clock.Source) (*seqfacade.Node, error) {
	t.Helper()
	n, err := seqfacade.Start(t.Context(), cfg, cli, src)
	if err == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 2*time.Second)
			defer cancel()
			_ = n.Close(ctx)
		})
	}
	return n, err
}

// mustServe starts a node and waits until it serves.
func mustServe(t testing.TB, cli *clientv3.Client, cfg seqfacade.Config, src clock.Source) *seqfacade.Node {
	t.Helper()
	n, err := start(t, cli, cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to serve", 10*time.Second, ready(n))
	return n
}

func waitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	src := clock.NewReal()
	end := src.Mono() + within
	for !cond() {
		if src.Mono() > end {
			t.Fatalf("%s did not happen within %v", what, within)
		}
		<-src.After(5 * time.Millisecond)
	}
}

// proxied returns a client that reaches endpoint through a fault proxy.
func proxied(t testing.TB, endpoint string) (*clientv3.Client, *faultproxy.Proxy) {
	t.Helper()
	p, err := faultproxy.New(strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return etcdtest.Client(t, "http://"+p.Addr()), p
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// persisted reads every section's max_seq from etcd, by section number.
func persisted(t testing.TB, cli *clientv3.Client, cfg seqfacade.Config) map[int]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	prefix := cmpOr(cfg.Prefix, "/mig") + "/seq/groups/"
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	gs := cmpOr(cfg.GroupSize, seqfacade.DefaultGroupSize)
	out := map[int]uint64{}
	for _, kv := range resp.Kvs {
		var g int
		if _, err := fmt.Sscanf(strings.TrimPrefix(string(kv.Key), prefix), "%x", &g); err != nil {
			t.Fatalf("group key %s: %v", kv.Key, err)
		}
		v := kv.Value[1:]
		for i := 0; 8*i < len(v); i++ {
			var m uint64
			for b := 7; b >= 0; b-- {
				m = m<<8 | uint64(v[8*i+b])
			}
			out[g*gs+i] = m
		}
	}
	return out
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a == zero {
		return b
	}
	return a
}

// history records every value handed out, per uid, safe for concurrent
// use.
type history struct {
	mu   sync.Mutex
	vals map[uint64][]uint64
}

func (h *history) add(uid, v uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.vals == nil {
		h.vals = map[uint64][]uint64{}
	}
	h.vals[uid] = append(h.vals[uid], v)
}

func (h *history) max(uid uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Max(append([]uint64{0}, h.vals[uid]...))
}

func (h *history) uids() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.vals))
}

func (h *history) all(uid uint64) []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.vals[uid])
}

// nextAll calls Next once per uid and records the values.
func nextAll(t testing.TB, n *seqfacade.Node, h *history, uids ...uint64) {
	t.Helper()
	for _, u := range uids {
		v, err := patiently(t, func() (uint64, error) { return n.Next(ctxT(t), u) })
		if err != nil {
			t.Fatalf("Next(%d): %v", u, err)
		}
		h.add(u, v)
	}
}

// assertAbove checks that n's next value of every uid in h is above
// everything h recorded for it.
func assertAbove(t testing.TB, n *seqfacade.Node, h *history) {
	t.Helper()
	for _, u := range h.uids() {
		cur, err := patiently(t, func() (uint64, error) { return n.Current(ctxT(t), u) })
		if err != nil {
			t.Fatalf("Current(%d): %v", u, err)
		}
		before := h.max(u)
		if cur < before {
			t.Fatalf("uid %d: Current %d after restart is below %d, handed out before", u, cur, before)
		}
		v, err := patiently(t, func() (uint64, error) { return n.Next(ctxT(t), u) })
		if err != nil {
			t.Fatalf("Next(%d): %v", u, err)
		}
		if v <= before || v <= cur {
			t.Fatalf("uid %d: %d after restart, not above %d handed out before (Current %d)", u, v, before, cur)
		}
	}
}

func isUnavailable(err error) bool { return errors.Is(err, seqfacade.ErrUnavailable) }

// patiently calls f again, a few times, while it fails because an etcd
// call of the node's timed out (ErrUnavailable with a deadline in its
// chain), as any client of the service retries unavailable: on a loaded
// CI host, under -race, the embedded etcd sometimes takes longer than the
// tests' 200 ms request timeout, and a node's claim lapses when its
// confirmation is that late. Other errors, and a fifth timeout in a row,
// are returned.
func patiently[T any](t testing.TB, f func() (T, error)) (T, error) {
	t.Helper()
	for i := 0; ; i++ {
		v, err := f()
		// A claim that lapsed is the same: a confirmation that took longer
		// than the right it gives (whether the call found the claim
		// expired, or the node's right run out before it).
		msg := fmt.Sprint(err)
		lapsed := strings.Contains(msg, "claim on group") && strings.Contains(msg, "has expired") ||
			strings.Contains(msg, "has not confirmed its routing for")
		if err == nil || i == 4 || !isUnavailable(err) || !(errors.Is(err, context.DeadlineExceeded) || lapsed) {
			return v, err
		}
		t.Logf("a call timed out in etcd, trying again: %v", err)
		if clock.Sleep(t.Context(), clock.NewReal(), 100*time.Millisecond) != nil {
			return v, err
		}
	}
}
