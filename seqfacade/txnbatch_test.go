package seqfacade

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
)

// queued runs f(i) for i in [0, n) on n goroutines once all n have
// queued their transaction in b (f makes one call of b.txn), and returns
// each one's error: b's batches are held until then, and before runs
// just before they are let go.
func queued(t *testing.T, b *txnBatcher, n int, f func(i int) error, before ...func()) []error {
	b.mu.Lock()
	b.mu.inFlight = txnInFlight
	b.mu.Unlock()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	src := clock.NewRuntime()
	for {
		b.mu.Lock()
		q := len(b.mu.queue)
		b.mu.Unlock()
		if q == n {
			break
		}
		if err := clock.Sleep(t.Context(), src, time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range before {
		g()
	}
	b.mu.Lock()
	b.mu.inFlight = 0
	close(b.mu.freed)
	b.mu.freed = make(chan struct{})
	b.mu.Unlock()
	wg.Wait()
	return errs
}

// TestTxnBatcher: concurrent transactions share etcd transactions, and
// each still has its own outcome. Against a real etcd.
func TestTxnBatcher(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t).Endpoints()...)
	ctx := func() (context.Context, context.CancelFunc) { return context.WithTimeout(t.Context(), 10*time.Second) }
	key := func(i int) string { return fmt.Sprintf("/batch/%03d", i) }
	// Keys 0-9 exist: their callers' comparisons (absent) fail.
	for i := range 10 {
		if _, err := cli.Put(t.Context(), key(i), "before"); err != nil {
			t.Fatal(err)
		}
	}
	const callers = 120
	b := newTxnBatcher(cli, time.Second)
	got := make([]*clientv3.TxnResponse, callers)
	errs := queued(t, b, callers, func(i int) error {
		c, cancel := ctx()
		defer cancel()
		var err error
		got[i], err = b.txn(c, i, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key(i)), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(key(i), "batched"), clientv3.OpGet(key(i))},
			[]clientv3.Op{clientv3.OpGet(key(i))})
		return err
	})
	revs := map[int64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		r := got[i]
		if want := i >= 10; r.Succeeded != want {
			t.Fatalf("caller %d: succeeded %v, want %v", i, r.Succeeded, want)
		}
		if r.Header == nil || r.Header.Revision == 0 {
			t.Fatalf("caller %d: no header revision", i)
		}
		kvs := r.Responses[len(r.Responses)-1].GetResponseRange().Kvs
		want := map[bool]string{true: "batched", false: "before"}[r.Succeeded]
		if len(kvs) != 1 || string(kvs[0].Value) != want {
			t.Fatalf("caller %d: read %v, want %q", i, kvs, want)
		}
		if r.Succeeded {
			revs[r.Header.Revision] = true
		}
	}
	// Queued together, they went in batches of txnBatchMax.
	if len(revs) > callers/txnBatchMax+1 {
		t.Fatalf("%d writes took %d etcd revisions: not batched", callers-10, len(revs))
	}
	if n := b.sent.Load(); n > callers/txnBatchMax+1 {
		t.Fatalf("%d transactions took %d etcd transactions: not batched", callers, n)
	}
	t.Logf("%d transactions in %d etcd transactions, writes at %d revisions", callers, b.sent.Load(), len(revs))

	// Transactions of one group never share a batch: etcd would refuse
	// the batch for writing one key twice.
	errs = queued(t, b, 40, func(i int) error {
		c, cancel := ctx()
		defer cancel()
		r, err := b.txn(c, 7, nil, []clientv3.Op{clientv3.OpPut(key(7), fmt.Sprint(i))}, nil)
		if err == nil && !r.Succeeded {
			err = fmt.Errorf("not applied")
		}
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d of one group: %v", i, err)
		}
	}
}

// TestTxnBatcherTooMany: a batch etcd refuses as too many operations is
// sent again in halves, and later batches are held to the size that went
// through.
func TestTxnBatcherTooMany(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t).Endpoints()...)
	b := newTxnBatcher(cli, time.Second)
	b.mu.max = 1000 // past etcd's default --max-txn-ops (128)
	const callers = 300
	errs := queued(t, b, callers, func(i int) error {
		c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		r, err := b.txn(c, i, nil, []clientv3.Op{clientv3.OpPut(fmt.Sprintf("/many/%03d", i), "x")}, nil)
		if err == nil && !r.Succeeded {
			err = fmt.Errorf("not applied")
		}
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.max > 128 {
		t.Fatalf("batches held to %d transactions after etcd refused larger ones", b.mu.max)
	}
	resp, err := cli.Get(t.Context(), "/many/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != callers {
		t.Fatalf("%d keys written, want %d", resp.Count, callers)
	}
}

// TestTxnBatcherEndedNotSent: a transaction whose caller's context ended
// while it was queued is never sent.
func TestTxnBatcherEndedNotSent(t *testing.T) {
	cli := etcdtest.Client(t, etcdtest.Start(t).Endpoints()...)
	b := newTxnBatcher(cli, time.Second)
	dead, cancel := context.WithCancel(t.Context())
	errs := queued(t, b, 2, func(i int) error {
		ctx := t.Context()
		if i == 1 {
			ctx = dead
		}
		_, err := b.txn(ctx, i, nil, []clientv3.Op{clientv3.OpPut(fmt.Sprintf("/ended/%d", i), "x")}, nil)
		return err
	}, cancel)
	if errs[0] != nil || errs[1] == nil {
		t.Fatalf("errors %v: want the live caller's write done, the other's refused", errs)
	}
	resp, err := cli.Get(t.Context(), "/ended/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != "/ended/0" {
		t.Fatalf("keys written: %v, want /ended/0 alone", resp.Kvs)
	}
}

// TestTxnBatcherOnlyEnded: a queue holding only transactions whose
// callers' contexts ended yields no batch (nothing to send), and each is
// finished with its context's error.
func TestTxnBatcherOnlyEnded(t *testing.T) {
	b := newTxnBatcher(nil, time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ended := &batchedTxn{ctx: ctx, group: 3, over: make(chan struct{})}
	b.mu.Lock()
	b.mu.queue = []*batchedTxn{ended}
	batch := b.takeLocked()
	b.mu.Unlock()
	if len(batch) != 0 || len(b.mu.queue) != 0 {
		t.Fatalf("batch %d, queue %d: want both empty", len(batch), len(b.mu.queue))
	}
	select {
	case <-ended.over:
		if !errors.Is(ended.err, context.Canceled) {
			t.Fatalf("ended transaction finished with %v", ended.err)
		}
	default:
		t.Fatal("ended transaction not finished")
	}
}
