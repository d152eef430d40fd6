package rpc

import (
	"fmt"
	"net/http"
	"strings"
)

// readiness is one named check of /readyz.
type readiness struct {
	name  string
	check func() error
}

// serveHealthz answers 200 while the process can answer at all: a
// liveness probe restarts a process that cannot, and nothing else.
func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// serveReadyz answers 200 when every readiness check passes and 503 when
// one fails, with one line per check either way, so an operator sees
// what is wrong from the probe's answer alone.
func (s *Server) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	var b strings.Builder
	failed := 0
	for _, r := range s.ready {
		if err := r.check(); err != nil {
			failed++
			fmt.Fprintf(&b, "%s: failed: %v\n", r.name, err)
		} else {
			fmt.Fprintf(&b, "%s: ok\n", r.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if failed > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %d of %d checks failed\n%s", failed, len(s.ready), b.String())
		return
	}
	fmt.Fprintf(w, "ok\n%s", b.String())
}
