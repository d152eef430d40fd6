package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTagger feeds request streams to the tagger in every split into two
// reads: the tag is found exactly when the request carrying it is whole,
// and bodies (even one holding a line like the header) are skipped.
func TestTagger(t *testing.T) {
	fake := "X-Server-From: not-a-tag\r\n\r\n" // a body that looks like a head
	for _, tt := range []struct {
		name   string
		stream string
		want   string // "" for none
	}{
		{"first request", "GET /raft/stream/message/1 HTTP/1.1\r\nHost: a\r\nX-Server-From: 8e9e05c52164694d\r\n\r\n", "8e9e05c52164694d"},
		{"header case", "POST /raft HTTP/1.1\r\nx-server-from: abc\r\nContent-Length: 0\r\n\r\n", "abc"},
		{"after an untagged request with a body",
			"POST /leases HTTP/1.1\r\nContent-Length: " + fmt.Sprint(len(fake)) + "\r\n\r\n" + fake +
				"GET /raft/probing HTTP/1.1\r\nX-Server-From: b2\r\n\r\n", "b2"},
		{"after a chunked body",
			"POST /raft/snapshot HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
				fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(fake), fake) +
				"POST /raft HTTP/1.1\r\nX-Server-From: c3\r\nContent-Length: 2\r\n\r\nok", "c3"},
		{"chunked with a trailer",
			"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nab\r\n0\r\nT: 1\r\n\r\n" +
				"GET / HTTP/1.1\r\nX-Server-From: d4\r\n\r\n", "d4"},
		{"never tagged", "GET /version HTTP/1.1\r\nHost: a\r\n\r\nGET /members HTTP/1.1\r\n\r\n", ""},
		{"not HTTP", "\x00\x01binary X-Server-From: e5\r\n\r\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for cut := 0; cut <= len(tt.stream); cut++ {
				tg := &tagger{header: "X-Server-From"}
				got, ok := tg.feed([]byte(tt.stream[:cut]))
				if !ok {
					got, ok = tg.feed([]byte(tt.stream[cut:]))
				}
				if ok != (tt.want != "") || got != tt.want {
					t.Fatalf("split at %d: tag %q, %v; want %q", cut, got, ok, tt.want)
				}
			}
		})
	}
}

func TestTaggerGivesUpOnAHugeHead(t *testing.T) {
	tg := &tagger{header: "X-Server-From"}
	if _, ok := tg.feed(bytes.Repeat([]byte("a"), maxHead+1)); ok || tg.state != gaveUp {
		t.Fatalf("a head over %d bytes: state %v, want gaveUp", maxHead, tg.state)
	}
}

// TestCutSource: one HTTP server behind one proxy, two clients that name
// themselves in a header. Cutting one client's source stops its requests
// (held, not failed) and not the other's; restoring it delivers the held
// request.
func TestCutSource(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Header.Get("X-Who"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := newProxy(t, ln.Addr().String(), WithSourceHeader("x-who"))

	// Each client has its own transport, as each etcd member has.
	clients := map[string]*http.Client{"a": {Transport: &http.Transport{}}, "b": {Transport: &http.Transport{}}}
	get := func(ctx context.Context, who string) (string, error) {
		c := clients[who]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.Addr()+"/", strings.NewReader("body"))
		if err != nil {
			return "", err
		}
		req.Header.Set("X-Who", who)
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for _, who := range []string{"a", "b"} {
		if got, err := get(t.Context(), who); err != nil || got != "hello "+who {
			t.Fatalf("%s before the cut: %q, %v", who, got, err)
		}
	}
	eventually(t, "both sources known", func() bool { return len(p.Sources()) == 2 })

	p.CutSource("a")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = get(ctx, "a")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a during its cut: %v, want a timeout", err)
	}
	if got, err := get(t.Context(), "b"); err != nil || got != "hello b" {
		t.Fatalf("b during a's cut: %q, %v", got, err)
	}

	// A request sent during the cut arrives once it heals, on the same
	// connection.
	accepted := p.Stats().Accepted
	done := make(chan string, 1)
	go func() {
		got, err := get(t.Context(), "a")
		if err != nil {
			got = err.Error()
		}
		done <- got
	}()
	select {
	case got := <-done:
		t.Fatalf("a's request came through the cut: %q", got)
	case <-clk.After(200 * time.Millisecond):
	}
	p.RestoreSource("a")
	select {
	case got := <-done:
		if got != "hello a" {
			t.Fatalf("a after the heal: %q", got)
		}
	case <-clk.After(5 * time.Second):
		t.Fatal("a's held request never arrived")
	}
	if n := p.Stats().Accepted; n > accepted+1 {
		t.Fatalf("%d new connections after the heal, want at most 1 (the timed-out request's replacement)", n-accepted)
	}
}
