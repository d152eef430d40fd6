package scenario

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

// TestNetwork: a client of one datacenter reaches another datacenter's
// server through the link, oneWay each way, and the server's own
// datacenter reaches it directly; isolating either datacenter cuts the
// link, and healing restores it.
func TestNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	n := newNetwork()
	t.Cleanup(n.close)
	p, err := n.link(0, 1, addr)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := n.link(0, 1, addr); again != p {
		t.Fatal("a second link from dc1 to the same server is another proxy")
	}
	if got, want := n.viaFlag(0), addr+"="+p.Addr(); got != want {
		t.Fatalf("viaFlag(dc1) = %q, want %q", got, want)
	}
	if got := n.viaFlag(1); got != "" {
		t.Fatalf("viaFlag(dc2) = %q: dc2 has no link", got)
	}
	if n.via(1, addr) != addr || n.via(0, addr) != p.Addr() {
		t.Fatalf("via: dc1 %s, dc2 %s", n.via(0, addr), n.via(1, addr))
	}

	clk := clock.NewReal()
	get := func(dc int, timeout time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		if err != nil {
			return 0, err
		}
		c := n.client(dc)
		defer c.CloseIdleConnections()
		start := clk.Mono()
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != "ok" {
			err = errors.New("answer " + string(b))
		}
		return clk.Mono() - start, err
	}
	// One request, one answer: a round trip (the proxy accepts the
	// connection itself, at once).
	if took, err := get(0, 5*time.Second); err != nil || took < 2*oneWay {
		t.Fatalf("dc1 to a dc2 server: %v in %v, want at least %v", err, took, 2*oneWay)
	}
	if _, err := get(1, 5*time.Second); err != nil {
		t.Fatalf("dc2 to its own server: %v", err)
	}

	for _, cut := range []int{0, 1} {
		n.isolate(cut, "member-id", true)
		if _, err := get(0, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dc%d isolated: dc1 to a dc2 server: %v, want a timeout", cut+1, err)
		}
		n.isolate(cut, "member-id", false)
		if _, err := get(0, 5*time.Second); err != nil {
			t.Fatalf("dc%d healed: %v", cut+1, err)
		}
	}
	if !strings.Contains(p.Target(), addr) {
		t.Fatalf("the link forwards to %s, not %s", p.Target(), addr)
	}
}
