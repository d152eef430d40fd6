package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

// FuzzConn feeds arbitrary bytes to a connection, fast path and handler
// both registered, and checks that the server neither panics nor hangs
// and that whatever it sends back parses as a run of HTTP/1.1 answers.
func FuzzConn(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /fast HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Len", string(rune('0'+len(b)%10)))
			w.Write(b)
		}),
		Fast: map[string]FastHandler{"/fast": func(w *ResponseWriter, r *FastRequest) bool {
			if len(r.Body)%2 == 1 {
				return false
			}
			w.Write(r.Body)
			return true
		}},
		MaxHeaderBytes: 1 << 10,
		// The client cannot half-close a net.Pipe: the server closes once
		// it has waited this long for more.
		IdleTimeout:       100 * time.Millisecond,
		ReadHeaderTimeout: 100 * time.Millisecond,
		ReadTimeout:       100 * time.Millisecond,
	}
	s.init()
	src := clock.NewReal()
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		c := newConn(s, server)
		s.trackConn(c, true)
		served := make(chan struct{})
		go func() {
			defer close(served)
			c.serve()
		}()
		client.SetDeadline(src.Now().Wall.Add(5 * time.Second))
		go func() {
			client.Write(in)
			// Then wait for the server to close: net.Pipe has no half close.
		}()
		out, _ := io.ReadAll(client)
		client.Close()
		<-served
		br := bufio.NewReader(bytes.NewReader(out))
		for {
			if _, err := br.Peek(1); err != nil {
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("unparsable answer in %q: %v", out, err)
			}
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatalf("answer body in %q: %v", out, err)
			}
		}
	})
}
