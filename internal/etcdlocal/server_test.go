package etcdlocal

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest/etcdkv"
)

func startCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartPutGetRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Start(startCtx(t), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	eps := s.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") || strings.HasSuffix(eps[0], ":0") {
		t.Fatalf("Endpoints() = %v, want one bound loopback URL", eps)
	}

	// A second member on the same directory fails at once instead of
	// waiting forever for etcd's database lock.
	if _, err := Start(startCtx(t), Config{Dir: dir}); !errors.Is(err, ErrDirInUse) {
		t.Fatalf("second Start on %s: %v, want ErrDirInUse", dir, err)
	}

	c := etcdkv.Client(t, eps...)
	etcdkv.Put(t, c, "k", "v1")
	if got := etcdkv.Get(t, c, "k"); got != "v1" {
		t.Fatalf("get k = %q, want v1", got)
	}
	// Clients first, as Close's doc asks.
	if err := c.Close(); err != nil {
		t.Fatalf("client Close: %v", err)
	}
	s.Close()
	s.Close() // idempotent: embed's own Close would panic here
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}

	// `mig serve` restarts on the same directory and must find its data,
	// even though port 0 gives it other ports this time.
	s2, err := Start(startCtx(t), Config{Dir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(s2.Close)
	c2 := etcdkv.Client(t, s2.Endpoints()...)
	t.Cleanup(func() { c2.Close() })
	if got := etcdkv.Get(t, c2, "k"); got != "v1" {
		t.Fatalf("after restart get k = %q, want v1", got)
	}
}

// A client that keeps a stream open must not hold Close up for etcd's
// request timeout (over 5 s); DrainTimeout bounds it.
func TestCloseWithOpenStream(t *testing.T) {
	s, err := Start(startCtx(t), Config{Dir: t.TempDir(), DrainTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	c := etcdkv.Client(t, s.Endpoints()...)
	t.Cleanup(func() { c.Close() })
	wctx, wcancel := context.WithCancel(t.Context())
	defer wcancel()
	wch := c.Watch(clientv3.WithRequireLeader(wctx), "w")
	etcdkv.Put(t, c, "w", "1")
	select {
	case <-wch:
	case <-clock.NewReal().After(etcdkv.CallTimeout):
		t.Fatal("watch saw no event")
	}

	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-clock.NewReal().After(4 * time.Second):
		// Not a speed assertion: the drain is bounded at 50 ms, and etcd
		// alone would wait past 5 s.
		t.Fatal("Close waited for the open watch stream")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"defaults", Config{Dir: "d"}, nil},
		{"no dir", Config{}, ErrConfig},
		{"any address", Config{Dir: "d", ClientAddr: "0.0.0.0:0"}, ErrNotLoopback},
		{"host name", Config{Dir: "d", PeerAddr: "localhost:2380"}, ErrNotLoopback},
		{"ipv6 loopback", Config{Dir: "d", ClientAddr: "[::1]:0"}, nil},
		{"no port", Config{Dir: "d", ClientAddr: "127.0.0.1"}, ErrConfig},
		{"bad port", Config{Dir: "d", ClientAddr: "127.0.0.1:99999"}, ErrConfig},
		{"short election", Config{Dir: "d", Heartbeat: 100 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond}, ErrConfig},
		{"tiny heartbeat", Config{Dir: "d", Heartbeat: time.Microsecond}, ErrConfig},
		{"sub-second compaction", Config{Dir: "d", Compaction: time.Millisecond}, ErrConfig},
		{"no compaction", Config{Dir: "d", Compaction: -1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStartNotReady(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Start(ctx, Config{Dir: filepath.Join(t.TempDir(), "etcd")})
	if !errors.Is(err, ErrNotReady) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a done context = %v, want ErrNotReady and context.Canceled", err)
	}
}
