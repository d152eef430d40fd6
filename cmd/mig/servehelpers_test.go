package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migclient"
)

// fastFlags make a fenced worker notice within about two seconds (the
// shortest lease etcd grants is 2s) and a sequence node activate a group
// half a second after it first sees it, when nobody released it.
var fastFlags = []string{
	"--lease-ttl", "2s", "--lease-margin", "500ms", "--etcd-timeout", "300ms",
	"--watermark-window", "1s", "--start-timeout", "10s", "--shutdown-timeout", "5s",
	"--seq-activation-delay", "500ms", "--seq-lease-margin", "100ms", "--seq-etcd-timeout", "200ms",
}

// testServer is `mig serve` running in-process, on 127.0.0.1 at a free
// port, stopped by cancelling its context.
type testServer struct {
	addr   string
	logs   *syncBuffer // JSON lines
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startServe runs `mig serve` with args (after defaults for a test: a free
// loopback port, JSON logs) and waits until it serves. Cleanup stops it.
func startServe(t testing.TB, args ...string) *testServer {
	t.Helper()
	s, err := tryServe(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryServe is startServe that returns the error when the server does not
// start.
func tryServe(t testing.TB, args ...string) (*testServer, error) {
	t.Helper()
	fs := flag.NewFlagSet("mig serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := defineServeFlags(fs)
	all := append([]string{"--listen", "127.0.0.1:0", "--log-format", "json"}, args...)
	if err := fs.Parse(all); err != nil {
		t.Fatalf("flags %q: %v", all, err)
	}
	cfg, err := f.config()
	if err != nil {
		t.Fatalf("flags %q: %v", all, err)
	}
	s := &testServer{logs: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	s.cancel = cancel
	ready := make(chan string, 1)
	go func() {
		s.done <- runServe(ctx, cfg, newLogger(s.logs, "json", "debug"), s.logs, func(addr string) { ready <- addr })
	}()
	select {
	case s.addr = <-ready:
	case err := <-s.done:
		cancel()
		return nil, fmt.Errorf("mig serve %q did not start: %v\nlogs:\n%s", args, err, s.logs)
	case <-clock.NewReal().After(60 * time.Second):
		cancel()
		t.Fatalf("mig serve %q not serving after 60s; logs:\n%s", args, s.logs)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("mig serve %q: %v", args, err)
		}
		if t.Failed() {
			t.Logf("logs of mig serve %q:\n%s", args, s.logs)
		}
	})
	return s, nil
}

// stop cancels the server's context, as SIGTERM does, and returns what
// runServe returned. It may be called more than once.
func (s *testServer) stop() error {
	s.once.Do(func() {
		s.cancel()
		s.err = <-s.done
	})
	return s.err
}

func (s *testServer) url() string { return "http://" + s.addr }

// stoppedIssued returns ids_issued from the server's "stopped" log line.
func (s *testServer) stoppedIssued(t testing.TB) int64 {
	t.Helper()
	return issuedFromLogs(t, s.logs.String())
}

// issuedFromLogs finds the "stopped" line among JSON log lines and returns
// its ids_issued.
func issuedFromLogs(t testing.TB, logs string) int64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct {
			Msg       string   `json:"msg"`
			IDsIssued *float64 `json:"ids_issued"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "stopped" && line.IDsIssued != nil {
			return int64(*line.IDsIssued)
		}
	}
	t.Fatalf("no \"stopped\" line with ids_issued in the logs:\n%s", logs)
	return 0
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// etcdEndpoint starts an embedded etcd for the test and returns its
// endpoint as --etcd takes it.
func etcdEndpoint(t testing.TB) string {
	t.Helper()
	return strings.Join(etcdtest.Start(t).Endpoints(), ",")
}

// newRPCClient returns a client of endpoints. Its attempts time out after
// 10s rather than migclient.DefaultTimeout's 2s, unless opts say otherwise: the
// tests run under -race on a small machine busy with other packages'
// tests, and a slow answer must not pass for a lost one.
func newRPCClient(t testing.TB, endpoints []string, opts ...migclient.Option) *migclient.Client {
	t.Helper()
	c, err := migclient.New(endpoints, append([]migclient.Option{migclient.WithTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// get returns the status and body of a GET of url.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// postJSON posts body to NextIDs at base as JSON and returns the status
// and the decoded answer, numbers kept as json.Number so that a number
// where a string belongs is seen.
func postJSON(t testing.TB, base, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(base+"/twirp/mig.v1.IDService/NextIDs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("answer to %s: %v", body, err)
	}
	return resp.StatusCode, m
}

// waitFor polls cond every 50ms until it holds or within passes, and
// reports how long it took.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	src := clock.NewReal()
	start := src.Mono()
	for !cond() {
		if src.Mono()-start > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		<-src.After(50 * time.Millisecond)
	}
	return src.Mono() - start
}

// checkUnique sorts ids and fails the test at the first duplicate.
func checkUnique(t testing.TB, ids []mig.ID) {
	t.Helper()
	slices.Sort(ids)
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			t.Fatalf("ID %d issued twice (of %d IDs)", ids[i], len(ids))
		}
	}
}
