package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
)

// loadtestIssuer is an in-process IDIssuer on the real clock.
type loadtestIssuer struct{ gen *mig.Generator }

func (i loadtestIssuer) NextN(n int) (mig.Batch, error) { return i.gen.NextN(n) }
func (i loadtestIssuer) Layout() mig.Layout             { return mig.DefaultLayout() }
func (i loadtestIssuer) Datacenter() string             { return "test" }

func startLoadtestTarget(t *testing.T) string { return startLoadtestWorker(t, 3) }

// startLoadtestWorker serves IDs of worker on a loopback port and
// returns its URL.
func startLoadtestWorker(t *testing.T, worker uint32) string {
	t.Helper()
	clk, err := clock.NewSlewing(clock.NewReal(), clock.SlewConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := mig.New(mig.Config{Layout: mig.DefaultLayout(), Worker: worker}, clk, mig.NewMemCeiling(mig.MaxTick))
	if err != nil {
		t.Fatal(err)
	}
	s, err := rpc.NewServer(loadtestIssuer{g})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// brokenIDs answers every NextIDs with the same ID.
type brokenIDs struct{}

func (brokenIDs) NextIDs(context.Context, *migv1.NextIDsRequest) (*migv1.NextIDsResponse, error) {
	id, _ := mig.DefaultLayout().Compose(mig.DefaultLayout().TickOf(clock.NewReal().Now().Wall.UnixNano()), 3, 0)
	return &migv1.NextIDsResponse{Ids: []uint64{uint64(id)}, WorkerId: 3}, nil
}

func (brokenIDs) Decode(context.Context, *migv1.DecodeRequest) (*migv1.DecodeResponse, error) {
	return nil, nil
}

func TestLoadtestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "--target is required"},
		{[]string{"--target", "x:1", "--mode", "foo"}, `invalid value "foo" for flag -mode: not ids or seq`},
		{[]string{"--target", "x:1", "--dist", "normal"}, `-dist: not uniform, hot or zipf`},
		{[]string{"--target", "x:1", "--clients", "0"}, "--clients 0: must be positive"},
		{[]string{"--target", "x:1", "--clients", "100000"}, "--clients 100000: must be in 1..10000"},
		{[]string{"--target", "x:1", "--rate", "-5"}, "--rate -5: must be in"},
		{[]string{"--target", "x:1", "--batch", "200000"}, "--batch 200000: must be in 1..100000 in ids mode"},
		{[]string{"--target", "x:1", "--zipf-s", "1"}, "--zipf-s 1: must be above 1"},
		{[]string{"--target", "x:1", "--mode", "seq", "--uids", "1000", "--uid-limit", "1000"}, "--uids 1000: must be below the uid space 1000"},
		{[]string{"--target", "x:1", "--uid-limit", "0"}, "--uid-limit 0: must be positive"},
		{[]string{"--target", "x:1", "--backoff", "1s", "--max-backoff", "100ms"}, "--max-backoff 100ms: must be at least the first wait, 1s"},
		{[]string{"--target", "x:1", "--backoff", "-1s"}, "--backoff -1s: must be in 0..1m0s"},
		{[]string{"--target", "x:1", "--hot-calls", "2"}, "--hot-calls 2: must be in (0, 1]"},
		{[]string{"--target", "x:1", "--clock-tolerance", "-1s"}, "--clock-tolerance -1s: must not be negative"},
		{[]string{"--target", "x:1", "--duration", "0s"}, "give a duration, a --count, or both"},
		{[]string{"--target", "x:1", "--redis", "nohost"}, "--redis nohost: not host:port"},
		{[]string{"--target", "ftp://x", "--count", "1"}, "--target ftp://x"},
		{[]string{"--target", "x:1", "extra"}, `unexpected argument "extra"`},
		{[]string{"--target", "x:1", "--count", "x"}, `invalid value "x" for flag -count`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, status := runMig(t, nil, "", append([]string{"loadtest"}, tt.args...)...)
			if status != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("status %d, stderr %q; want 2 and %q", status, stderr, tt.want)
			}
		})
	}
}

func TestLoadtestRuns(t *testing.T) {
	url := startLoadtestTarget(t)
	plot := filepath.Join(t.TempDir(), "plot.html")
	stdout, stderr, status := runMig(t, nil, "", "loadtest", "--target", url, "--duration", "300ms", "--clients", "2", "--batch", "5", "--interval", "100ms", "--plot", plot)
	if status != exitOK || !strings.Contains(stdout, "PASS") || !strings.Contains(stderr, "req/s") {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	t.Log(stdout)
	if b, err := os.ReadFile(plot); err != nil || !strings.Contains(string(b), "<svg") {
		t.Errorf("plot: %v", err)
	}

	stdout, stderr, status = runMig(t, map[string]string{"MIG_TARGET": url}, "", "loadtest", "--count", "50", "--rate", "500", "--json", "--use-json")
	var rep loadtest.Report
	if status != exitOK || json.Unmarshal([]byte(stdout), &rep) != nil || rep.MIG.Requests != 50 || rep.MIG.Loop != "open" {
		t.Fatalf("status %d, %d requests\nstdout:\n%s\nstderr:\n%s", status, rep.MIG.Requests, stdout, stderr)
	}
}

// TestLoadtestSeq runs seq mode against a server whose SeqService is a
// real sequence node on an embedded etcd.
func TestLoadtestSeq(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	node, err := seqfacade.Start(t.Context(), seqfacade.Config{
		NodeName:        "n1",
		Lease:           lease.Config{TTL: 2 * time.Second, RequestTimeout: 200 * time.Millisecond},
		Margin:          100 * time.Millisecond,
		ActivationDelay: 500 * time.Millisecond,
	}, cli, clock.NewReal())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close(context.WithoutCancel(t.Context())) })
	real := clock.NewReal()
	for end := real.Mono() + 10*time.Second; node.Ready() != nil; <-real.After(5 * time.Millisecond) {
		if real.Mono() > end {
			t.Fatal("sequence node not serving after 10s")
		}
	}
	clk, err := clock.NewSlewing(clock.NewReal(), clock.SlewConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := mig.New(mig.Config{Layout: mig.DefaultLayout(), Worker: 3}, clk, mig.NewMemCeiling(mig.MaxTick))
	if err != nil {
		t.Fatal(err)
	}
	s, err := rpc.NewServer(loadtestIssuer{g}, rpc.WithSeq(node, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	stdout, stderr, status := runMig(t, nil, "", "loadtest", "--target", ts.URL, "--mode", "seq", "--count", "500", "--batch", "3", "--dist", "zipf", "--uids", "100")
	if status != exitOK || !strings.Contains(stdout, "1500 sequences") || !strings.Contains(stdout, "PASS") {
		t.Errorf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
}

func TestLoadtestViolationFails(t *testing.T) {
	ts := httptest.NewServer(migv1.NewIDServiceServer(brokenIDs{}))
	t.Cleanup(ts.Close)
	stdout, stderr, status := runMig(t, nil, "", "loadtest", "--target", ts.URL, "--count", "10", "--clients", "1")
	if status != exitFail || !strings.Contains(stdout, "VIOLATION   duplicate_id") || !strings.Contains(stderr, "the checker found") {
		t.Errorf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	stdout, stderr, status = runMig(t, nil, "", "loadtest", "--target", "127.0.0.1:1", "--count", "3", "--timeout", "100ms")
	if status != exitFail || !strings.Contains(stderr, "FAIL: no request succeeded (3 failed; most often: connection refused at 127.0.0.1:1, 3 times)") ||
		!strings.Contains(stdout, "failed at   127.0.0.1:1: connection refused, 3 attempts") || strings.Contains(stdout, "PASS") {
		t.Errorf("dead target: status %d\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
}

// TestLoadtestSpreadsOverTargets: each load client of ids mode starts on
// its own endpoint of --target, so every server gets its share; a target
// that refuses connections is in the report by name, and the run passes
// on the others.
func TestLoadtestSpreadsOverTargets(t *testing.T) {
	a, b := startLoadtestWorker(t, 4), startLoadtestWorker(t, 5)
	dead := "127.0.0.1:1"
	stdout, stderr, status := runMig(t, nil, "", "loadtest", "--target", a+","+b+","+dead, "--count", "600", "--clients", "6", "--json")
	var rep loadtest.Report
	if status != exitOK || json.Unmarshal([]byte(stdout), &rep) != nil || !rep.OK {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	for _, u := range []string{a, b} {
		if n := rep.MIG.Answers[strings.TrimPrefix(u, "http://")]; n < 100 {
			t.Errorf("%s answered %d of 600: %v", u, n, rep.MIG.Answers)
		}
	}
	if len(rep.MIG.Failures) == 0 || rep.MIG.Failures[0].Endpoint != dead || rep.MIG.Failures[0].Cause != "connection refused" {
		t.Errorf("failures %+v, want connections refused at %s", rep.MIG.Failures, dead)
	}
}
