package workerid_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/workerid"
)

// lateKV holds back one transaction, once armed: its caller sees its call
// time out, as when a request is stuck on a slow connection, and the test
// applies the transaction later. etcd does that to a request it received
// before the client gave up: a proposal forwarded late to the leader, a
// request on a connection the client's balancer no longer uses.
type lateKV struct {
	clientv3.KV
	arm  atomic.Bool
	late chan func() (*clientv3.TxnResponse, error)
}

func newLateKV(kv clientv3.KV) *lateKV {
	return &lateKV{KV: kv, late: make(chan func() (*clientv3.TxnResponse, error), 1)}
}

func (k *lateKV) Txn(ctx context.Context) clientv3.Txn {
	if k.arm.CompareAndSwap(true, false) {
		return &lateTxn{inner: k.KV.Txn(context.WithoutCancel(ctx)), ctx: ctx, k: k}
	}
	return k.KV.Txn(ctx)
}

// held waits for the transaction held back and returns what applies it.
func (k *lateKV) held(t *testing.T) func() (*clientv3.TxnResponse, error) {
	t.Helper()
	select {
	case apply := <-k.late:
		return apply
	case <-clock.NewReal().After(5 * time.Second):
		t.Fatal("no transaction was held back within 5s")
		return nil
	}
}

type lateTxn struct {
	inner clientv3.Txn
	ctx   context.Context
	k     *lateKV
}

func (t *lateTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.inner = t.inner.If(cs...); return t }
func (t *lateTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.inner = t.inner.Then(ops...); return t }
func (t *lateTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.inner = t.inner.Else(ops...); return t }
func (t *lateTxn) Commit() (*clientv3.TxnResponse, error) {
	t.k.late <- t.inner.Commit
	<-t.ctx.Done()
	return nil, t.ctx.Err()
}

func persistedTick(t *testing.T, cli *clientv3.Client, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key)
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("reading %s: %v (%d keys)", key, err, len(r.Kvs))
	}
	var v struct{ Tick int64 }
	if err := json.Unmarshal(r.Kvs[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	return v.Tick
}

// TestLateWatermarkWriteFails: worker A's extension W1 times out, so A's
// ceiling stays; the next extension W2 > W1 succeeds and A issues above
// W1. W1 reaches etcd after that. It must fail: had it applied, the
// watermark would be back at W1, under ticks A issued, and B, claiming
// the ID after A is cut off with its ID clock behind A's (as after a
// wall clock step back), would issue those ticks again. It did, before
// the watermark write compared the key's revision.
func TestLateWatermarkWriteFails(t *testing.T) {
	srv := etcdtest.Start(t)
	direct := etcdtest.Client(t, srv.Endpoints()...)
	cliA, proxy := proxied(t, srv.Endpoints()[0])
	lkv := newLateKV(cliA.KV)
	cliA.KV = lkv
	cfg := fastConfig("tokyo", workerid.Range{First: 3, Last: 3})
	real := clock.NewReal()

	a := mustStart(t, cliA, cfg, real)
	var recA issued
	stopA := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { issueUntil(a, real, &recA, stopA) })
	defer func() { close(stopA); wg.Wait() }()

	lkv.arm.Store(true)
	apply := lkv.held(t) // W1
	writes := a.Status().Stats.WatermarkWrites
	waitFor(t, "the next extension (W2) to succeed", 5*time.Second, func() bool {
		return a.Status().Stats.WatermarkWrites > writes
	})
	ceiling := a.Status().Watermark
	r, err := apply()
	if err != nil {
		t.Fatal(err)
	}
	if r.Succeeded {
		t.Errorf("the late extension applied over a later one")
	}
	if got := persistedTick(t, direct, "/mig/watermarks/03"); got < ceiling {
		t.Errorf("persisted watermark %d below A's ceiling %d", got, ceiling)
	}
	proxy.Cut() // A is gone for etcd before its next extension

	waitFor(t, "A to pass its deadline", 5*time.Second, func() bool {
		_, err := a.Next()
		return errors.Is(err, workerid.ErrNotHeld)
	})
	behind := clock.NewSkewed(real, -10*time.Second)
	b := startWhenFree(t, "B to claim the ID", 10*time.Second, direct, cfg, behind)
	idsB := take(t, b, 50000)
	idsA, _ := recA.snapshot()
	assertUnique(t, idsA, idsB)
	assertAllAbove(t, idsB, idsA)
}

// TestLateWatermarkWriteLandsFirst: an extension that timed out lands
// before the next one is sent. The next one finds the watermark moved
// since it last knew it, reads it, and writes over it: the extensions go
// on, and the late write is counted.
func TestLateWatermarkWriteLandsFirst(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	lkv := newLateKV(cli.KV)
	cli.KV = lkv
	cfg := fastConfig("tokyo", workerid.Range{First: 5, Last: 5})
	a := mustStart(t, cli, cfg, clock.NewReal())

	lkv.arm.Store(true)
	apply := lkv.held(t)
	failures := a.Status().Stats.WatermarkFailures
	waitFor(t, "the held extension to time out", 5*time.Second, func() bool {
		return a.Status().Stats.WatermarkFailures > failures
	})
	if r, err := apply(); err != nil || !r.Succeeded {
		t.Fatalf("the late extension, with nothing written since: %v, %v", r, err)
	}
	writes := a.Status().Stats.WatermarkWrites
	waitFor(t, "the next extension to succeed", 5*time.Second, func() bool {
		return a.Status().Stats.WatermarkWrites > writes
	})
	st := a.Status()
	if st.Stats.WatermarkLateWrites != 1 {
		t.Errorf("%d late writes counted, want 1", st.Stats.WatermarkLateWrites)
	}
	if got := persistedTick(t, cli, "/mig/watermarks/05"); got != st.Watermark {
		t.Errorf("persisted watermark %d, ceiling %d", got, st.Watermark)
	}
	take(t, a, 10)
	// Close lowers the watermark to the last tick issued, over the
	// revision the late write left.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := persistedTick(t, cli, "/mig/watermarks/05"); got >= st.Watermark {
		t.Errorf("after Close the watermark is %d, not lowered from %d", got, st.Watermark)
	}
}
