package etcdcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest/etcdkv"
)

// putEventually retries a Put until it succeeds or the time runs out. Right
// after a member stops, a Put may already be on its way to the dead
// connection; the client does not retry mutations, so the test does.
func putEventually(t *testing.T, c *clientv3.Client, key, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*etcdkv.CallTimeout)
	defer cancel()
	clk := clock.NewReal()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := c.Put(cctx, key, val)
		ccancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("put %s never succeeded: %v", key, err)
		case <-clk.After(50 * time.Millisecond):
		}
	}
}

func TestClusterQuorum(t *testing.T) {
	c, err := Start(startCtx(t), t.TempDir(), 3)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Close)
	if got := len(c.Endpoints()); got != 3 {
		t.Fatalf("Endpoints() has %d URLs, want 3", got)
	}
	cli := etcdkv.Client(t, c.Endpoints()...)
	t.Cleanup(func() { cli.Close() })
	etcdkv.Put(t, cli, "k", "0")

	// Stop the leader first: the harder case, a new election.
	first := c.Leader()
	if first < 0 {
		first = 0
	}
	if err := c.Stop(first); err != nil {
		t.Fatalf("Stop(%d): %v", first, err)
	}
	if err := c.Stop(first); err != nil {
		t.Fatalf("second Stop(%d): %v", first, err)
	}
	putEventually(t, cli, "k", "1")

	second := (first + 1) % 3
	if err := c.Stop(second); err != nil {
		t.Fatalf("Stop(%d): %v", second, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	_, err = cli.Put(ctx, "k", "lost")
	cancel()
	if err == nil {
		t.Fatal("Put succeeded with one member of three")
	}

	if err := c.Restart(startCtx(t), first, second); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	putEventually(t, cli, "k", "2")
	if got := etcdkv.Get(t, cli, "k"); got != "2" {
		t.Fatalf("get k = %q, want 2", got)
	}
	// The restarted member kept its data and its URLs: read from it alone.
	only := etcdkv.Client(t, c.Member(first).Endpoints()...)
	t.Cleanup(func() { only.Close() })
	if got := etcdkv.Get(t, only, "k"); got != "2" {
		t.Fatalf("member %d: get k = %q, want 2", first, got)
	}
	if got, want := c.Member(first).Endpoints()[0], c.Endpoints()[first]; got != want {
		t.Fatalf("member %d endpoint %s, want %s", first, got, want)
	}
}

func TestClusterErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Start(t.Context(), dir, 0); !errors.Is(err, etcdlocal.ErrConfig) {
		t.Fatalf("0 members: %v, want etcdlocal.ErrConfig", err)
	}
	if _, err := Start(t.Context(), dir, 3, WithTiming(100*time.Millisecond, 100*time.Millisecond)); !errors.Is(err, etcdlocal.ErrConfig) {
		t.Fatalf("bad timing: %v, want etcdlocal.ErrConfig", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "m0"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(t.Context(), dir, 1); !errors.Is(err, etcdlocal.ErrDirInUse) {
		t.Fatalf("existing member dir: %v, want etcdlocal.ErrDirInUse", err)
	}

	c, err := Start(startCtx(t), t.TempDir(), 1)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Close)
	if err := c.Stop(1); !errors.Is(err, ErrNoMember) {
		t.Fatalf("Stop(1): %v, want ErrNoMember", err)
	}
	if err := c.Restart(t.Context(), 0); !errors.Is(err, ErrRunning) {
		t.Fatalf("Restart of a running member: %v, want ErrRunning", err)
	}
	if c.Member(5) != nil {
		t.Fatal("Member(5) != nil")
	}
	c.Close()
	c.Close()
	if err := c.Stop(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stop after Close: %v, want ErrClosed", err)
	}
}

// After every member has crashed, one member alone cannot become ready (no
// quorum); restarting them in one call brings the cluster back with its
// data.
func TestClusterFullOutage(t *testing.T) {
	c, err := Start(startCtx(t), t.TempDir(), 3)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Close)
	cli := etcdkv.Client(t, c.Endpoints()...)
	t.Cleanup(func() { cli.Close() })
	etcdkv.Put(t, cli, "k", "before")

	for i := range c.Len() {
		if err := c.Stop(i); err != nil {
			t.Fatalf("Stop(%d): %v", i, err)
		}
	}
	if got := c.Leader(); got != -1 {
		t.Fatalf("Leader() = %d with every member stopped", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err = c.Restart(ctx, 0)
	cancel()
	if !errors.Is(err, etcdlocal.ErrNotReady) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Restart of one member of three: %v, want etcdlocal.ErrNotReady", err)
	}
	// The failed restart stopped it again, so it can be named again.
	if err := c.Restart(startCtx(t), 0, 1, 2); err != nil {
		t.Fatalf("Restart(0, 1, 2): %v", err)
	}
	if got := etcdkv.Get(t, cli, "k"); got != "before" {
		t.Fatalf("get k = %q, want before", got)
	}
	putEventually(t, cli, "k", "after")
}
