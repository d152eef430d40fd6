// Package etcdkv is the client side of tests that talk to etcd: clients
// that the test's cleanup closes, and reads and writes that fail the test,
// each bounded by a timeout. It starts no server and imports none, so the
// tests of the packages that start servers may use it too.
package etcdkv

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// CallTimeout bounds every call of [Put] and [Get]: an etcd client call
// without a deadline can wait forever for a connection.
const CallTimeout = 5 * time.Second

// DialTimeout is the DialTimeout that [Client] and [NewClient] set when
// the config leaves it zero.
const DialTimeout = 2 * time.Second

// Client returns a client of endpoints, closed when the test is done.
func Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	return NewClient(t, clientv3.Config{Endpoints: endpoints})
}

// NewClient is [Client] with a config of the caller's, for example with
// keep-alive settings. A zero DialTimeout becomes [DialTimeout]; with no
// Logger nor LogConfig the client's logs are discarded (its errors reach
// the caller anyway).
func NewClient(t testing.TB, cfg clientv3.Config) *clientv3.Client {
	t.Helper()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DialTimeout
	}
	if cfg.Logger == nil && cfg.LogConfig == nil {
		// The client warns at every retry; in a partition test that is
		// hundreds of lines saying what the test is doing on purpose.
		cfg.Logger = zap.NewNop()
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("etcdkv: client: %v", err)
	}
	t.Cleanup(func() {
		// A close error says nothing about the test; the connection is
		// gone either way.
		_ = c.Close()
	})
	return c
}

// Put writes key, failing the test on an error.
func Put(t testing.TB, c *clientv3.Client, key, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	if _, err := c.Put(ctx, key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// Get reads key, failing the test on an error or unless it exists.
func Get(t testing.TB, c *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	r, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(r.Kvs) != 1 {
		t.Fatalf("get %s: %d keys", key, len(r.Kvs))
	}
	return string(r.Kvs[0].Value)
}
