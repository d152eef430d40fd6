package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/internal/etcdcluster"
	"github.com/migsvc/mig/internal/etcdlocal"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest/etcdkv"
)

// StartTimeout bounds starting a server or cluster. Starting takes well
// under a second; the margin is for a loaded machine running -race.
const StartTimeout = 30 * time.Second

// DialTimeout is the DialTimeout that [Client] and [NewClient] set when the
// config leaves it zero.
const DialTimeout = etcdkv.DialTimeout

// Start starts a single-member etcd with data in t.TempDir() and closes it
// when the test and its cleanups are done. It fails the test if etcd does
// not start.
func Start(t testing.TB) *etcdlocal.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), StartTimeout)
	defer cancel()
	s, err := etcdlocal.Start(ctx, etcdlocal.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartCluster starts an n-member cluster (3 is typical) with data in
// t.TempDir() and closes it when the test and its cleanups are done. It
// fails the test if the cluster does not start.
func StartCluster(t testing.TB, n int, opts ...etcdcluster.Option) *etcdcluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), StartTimeout)
	defer cancel()
	c, err := etcdcluster.Start(ctx, t.TempDir(), n, opts...)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Client returns a client of the given endpoints, closed before any server
// started earlier in the test. Every call on it still needs a context with
// a deadline: an etcd 3.7 client waits for a connection without one.
func Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	return NewClient(t, clientv3.Config{Endpoints: endpoints})
}

// NewClient is [Client] with a config of the caller's: see
// [etcdkv.NewClient].
func NewClient(t testing.TB, cfg clientv3.Config) *clientv3.Client {
	t.Helper()
	return etcdkv.NewClient(t, cfg)
}
