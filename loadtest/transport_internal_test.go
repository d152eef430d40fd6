package loadtest

import (
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/h1"
)

// TestTransportResendsWhatWasNotWritten: a request whose write fails
// before a byte leaves, on a pooled connection, goes again on a new
// connection, and the caller sees one answer.
func TestTransportResendsWhatWasNotWritten(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	hs := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "ok")
	})}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done })

	// A manual clock that stands still: the pooled connection is never
	// idle long enough to be checked, so the failed write finds it.
	tr := NewTransport(clock.NewManual(clock.NewReal().Now().Wall))
	cl := &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	post := func() string {
		resp, err := cl.Post("http://"+ln.Addr().String()+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	post()
	tr.mu.Lock()
	pool := tr.idle[ln.Addr().String()]
	tr.mu.Unlock()
	if len(pool) != 1 {
		t.Fatalf("%d idle connections, want 1", len(pool))
	}
	pool[0].nc.Close() // the next write on it fails with nothing written
	if body := post(); body != "ok" {
		t.Fatalf("answer %q", body)
	}
	if n := served.Load(); n != 2 {
		t.Errorf("the server answered %d requests, want 2: the failed write sent nothing", n)
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:7070/x": "127.0.0.1:7070",
		"http://lb.example/":      "lb.example:80",
		"http://[::1]/":           "[::1]:80",
		"http://[::1]:81/":        "[::1]:81",
	} {
		u, err := neturl.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := dialAddr(u); got != want {
			t.Errorf("DialAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
