package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/internal/faultproxy"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/rpc/migv1"
)

// TestServeFlagErrors checks that bad flag values stop `mig serve` before
// it starts anything, with status 2 and a message naming the flag and the
// value.
func TestServeFlagErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		stderr []string // substrings of the first line of standard error
	}{
		{name: "workers backwards", args: []string{"--workers", "5-3"}, stderr: []string{"-workers", `"5-3"`, "first <= last"}},
		{name: "workers past 63", args: []string{"--workers", "0-64"}, stderr: []string{"-workers", `"0-64"`, "<= 63"}},
		{name: "workers not a range", args: []string{"--workers", "all"}, stderr: []string{"-workers", `"all"`}},
		{name: "margin above ttl", args: []string{"--lease-margin", "6s"}, stderr: []string{"--lease-margin 6s", "TTL (5s)"}},
		{name: "margin above a short ttl", args: []string{"--lease-ttl", "2s", "--lease-margin", "3s"}, stderr: []string{"--lease-margin 3s", "TTL (2s)"}},
		{name: "ttl below etcd's minimum", args: []string{"--lease-ttl", "1s"}, stderr: []string{"--lease-ttl 1s"}},
		{name: "etcd timeout too long", args: []string{"--etcd-timeout", "3s"}, stderr: []string{"--etcd-timeout 3s"}},
		{name: "borrow beyond the window", args: []string{"--borrow", "6s"}, stderr: []string{"--borrow 6s"}},
		{name: "epoch garbage", args: []string{"--epoch", "garbage"}, stderr: []string{"-epoch", `"garbage"`, "RFC 3339"}},
		{name: "epoch not a tick", args: []string{"--epoch", "2025-01-01T00:00:00.001Z"}, stderr: []string{"-epoch", "10ms"}},
		{name: "empty datacenter", args: []string{"--dc", ""}, stderr: []string{`--dc ""`}},
		{name: "other dc overlaps", args: []string{"--workers", "0-15", "--other-dcs", "osaka=10-20"}, stderr: []string{"--other-dcs osaka=10-20", "overlaps"}},
		{name: "other dc is this one", args: []string{"--dc", "tokyo", "--other-dcs", "tokyo=20-30"}, stderr: []string{"--other-dcs tokyo=20-30"}},
		{name: "other dcs malformed", args: []string{"--other-dcs", "osaka"}, stderr: []string{"-other-dcs", "name=A-B"}},
		{name: "other dcs bad range", args: []string{"--other-dcs", "osaka=30-70"}, stderr: []string{"-other-dcs", "osaka"}},
		{name: "slew back rate", args: []string{"--slew-back-rate", "1.5"}, stderr: []string{"--slew-back-rate 1.5"}},
		{name: "slew forward rate", args: []string{"--slew-forward-rate", "-1"}, stderr: []string{"--slew-forward-rate -1"}},
		{name: "clock resolution", args: []string{"--clock-resolution", "20ms"}, stderr: []string{"--clock-resolution 20ms"}},
		{name: "ntp max offset", args: []string{"--ntp-max-offset", "-1s"}, stderr: []string{"--ntp-max-offset -1s"}},
		{name: "ntp interval", args: []string{"--ntp-servers", "ntp.invalid", "--ntp-interval", "-5s"}, stderr: []string{"--ntp-interval -5s"}},
		{name: "tls cert without key", args: []string{"--tls-cert", "cert.pem"}, stderr: []string{"--tls-cert cert.pem", "go together"}},
		{name: "client ca without tls", args: []string{"--client-ca", "ca.pem"}, stderr: []string{"--client-ca ca.pem", "needs --tls-cert"}},
		{name: "etcd user without password", args: []string{"--etcd", "127.0.0.1:2379", "--etcd-user", "mig"}, stderr: []string{"--etcd-user and --etcd-password"}},
		{name: "etcd tls with embedded etcd", args: []string{"--etcd-ca", "ca.pem"}, stderr: []string{"need --etcd"}},
		{name: "listen without port", args: []string{"--listen", "localhost"}, stderr: []string{"--listen localhost"}},
		{name: "shutdown timeout", args: []string{"--shutdown-timeout", "0s"}, stderr: []string{"--shutdown-timeout 0s"}},
		{name: "log format", args: []string{"--log-format", "xml"}, stderr: []string{"--log-format xml", "text or json"}},
		{name: "log level", args: []string{"--log-level", "loud"}, stderr: []string{"--log-level loud"}},
		{name: "argument", args: []string{"now"}, stderr: []string{`unexpected argument "now"`}},
		{name: "environment", env: map[string]string{"MIG_WORKERS": "5-3"}, stderr: []string{"MIG_WORKERS", "--workers", `"5-3"`}},
		{name: "environment and flag", env: map[string]string{"MIG_LEASE_TTL": "2s"}, args: []string{"--lease-margin", "3s"}, stderr: []string{"--lease-margin 3s", "TTL (2s)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, status := runMig(t, tt.env, "", append([]string{"serve"}, tt.args...)...)
			if status != exitUsage {
				t.Errorf("status %d, want %d", status, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want none", stdout)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			if !strings.HasPrefix(first, "mig serve: ") {
				t.Errorf("stderr does not start with \"mig serve: \":\n%s", stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(first, s) {
					t.Errorf("first line of stderr does not contain %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// TestServeProtobufAndJSON runs `mig serve` with its embedded etcd, as
// `go run ./cmd/mig serve` does, and calls it with the protobuf and JSON
// clients and with a plain JSON POST, as curl would.
func TestServeProtobufAndJSON(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--data-dir", t.TempDir(), "--dc", "tokyo", "--workers", "8-11", "--other-dcs", "osaka=12-15", "--seq-homes", "tokyo=0-167,osaka=168-335")
	layout := mig.DefaultLayout()

	var last mig.ID
	for _, opts := range [][]migclient.Option{nil, {migclient.WithJSON()}} {
		c := newRPCClient(t, []string{s.addr}, opts...)
		for _, n := range []int{1, 3, 1000, rpc.MaxCount} {
			ids, origin, err := c.NextIDs(t.Context(), n)
			if err != nil {
				t.Fatalf("NextIDs(%d): %v", n, err)
			}
			if len(ids) != n || origin.WorkerID != 8 || origin.Datacenter != "tokyo" {
				t.Fatalf("NextIDs(%d): %d IDs from %+v, want %d from worker 8 of tokyo", n, len(ids), origin, n)
			}
			if ids[0] <= last {
				t.Fatalf("NextIDs(%d): first ID %d not above the last one before, %d", n, ids[0], last)
			}
			last = ids[n-1]
			for _, id := range []mig.ID{ids[0], ids[n-1]} {
				d, err := c.Decode(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				p, _ := layout.Decompose(id)
				if d.Parts != p || !d.Time.Equal(layout.TickTime(p.Tick)) {
					t.Errorf("Decode(%d) = %+v, want %+v at %v", id, d, p, layout.TickTime(p.Tick))
				}
			}
		}
		if _, _, err := c.NextIDs(t.Context(), rpc.MaxCount+1); twirpCode(err) != twirp.InvalidArgument {
			t.Errorf("NextIDs(MaxCount+1): %v, want invalid_argument", err)
		}
	}

	// The JSON endpoint as curl sees it: IDs are strings.
	status, m := postJSON(t, s.url(), `{"count":3}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, m)
	}
	ids, ok := m["ids"].([]any)
	if !ok || len(ids) != 3 {
		t.Fatalf("ids %#v, want 3 of them", m["ids"])
	}
	for _, v := range ids {
		str, ok := v.(string)
		if !ok {
			t.Fatalf("ID %#v (%T) is not a JSON string", v, v)
		}
		id, err := mig.ParseID(str)
		if err != nil || id <= last {
			t.Fatalf("ID %q: %v, want an ID above %d", str, err, last)
		}
		last = id
	}
	if m["datacenter"] != "tokyo" || m["worker_id"] != json.Number("8") {
		t.Errorf("answer %v, want datacenter tokyo and worker_id 8", m)
	}
	if status, m := postJSON(t, s.url(), `{"count":0}`); status != http.StatusBadRequest || m["code"] != "invalid_argument" {
		t.Errorf("count 0: status %d, %v; want 400 invalid_argument", status, m)
	}

	if code, body := get(t, s.url()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "/readyz (the sequences activated)", func() bool {
		code, _ := get(t, s.url()+"/readyz")
		return code == http.StatusOK
	})
	_, body := get(t, s.url()+"/readyz")
	for _, check := range []string{"worker ID held: ok", "lease valid: ok", "clock safe: ok", "sequences: ok"} {
		if !strings.Contains(body, check) {
			t.Errorf("/readyz does not say %q:\n%s", check, body)
		}
	}
	_, metrics := get(t, s.url()+"/metrics")
	for _, want := range []string{
		"mig_worker_id 8\n", "mig_worker_claims_total 1\n", "mig_ntp_safe 1\n", "mig_clock_slewing ",
		"mig_worker_lease_deadline_headroom_seconds ", "mig_worker_watermark_headroom_seconds ",
		"mig_clock_offset_seconds ", "mig_ntp_offset_seconds ", "mig_clock_steps_back_total 0\n",
		`mig_rpc_requests_total{code="ok",method="NextIDs",service="IDService"}`, "mig_ids_issued_total ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	if strings.Contains(metrics, "etcd_") {
		t.Errorf("/metrics shows the embedded etcd's metrics; it should have a registry of its own")
	}
}

func twirpCode(err error) twirp.ErrorCode {
	var twerr twirp.Error
	if errors.As(err, &twerr) {
		return twerr.Code()
	}
	return ""
}

// TestServeMillionIDs runs four workers of one datacenter and two of
// another, each datacenter on its own etcd, and takes a million IDs from
// all six at once in batches of 1000: every ID is unique and carries its
// worker's ID.
func TestServeMillionIDs(t *testing.T) {
	t.Parallel()
	tokyoEtcd, osakaEtcd := etcdEndpoint(t), etcdEndpoint(t)
	type worker struct {
		s  *testServer
		dc string
	}
	var workers []worker
	for i := range 6 {
		// One etcd for the sequences of both datacenters (the first's).
		args := []string{"--etcd", tokyoEtcd, "--dc", "tokyo", "--workers", "0-3", "--other-dcs", "osaka=4-5", "--seq-etcd", tokyoEtcd}
		dc := "tokyo"
		if i >= 4 {
			args = []string{"--etcd", osakaEtcd, "--dc", "osaka", "--workers", "4-5", "--other-dcs", "tokyo=0-3", "--seq-etcd", tokyoEtcd}
			dc = "osaka"
		}
		workers = append(workers, worker{startServe(t, args...), dc})
	}

	const (
		batch    = 1000
		batches  = 1000
		perAgent = 2 // callers per server
	)
	var (
		next       atomic.Int64
		mu         sync.Mutex
		all        = make([]mig.ID, 0, batch*batches)
		workerOfDC = map[string]map[uint32]bool{"tokyo": {}, "osaka": {}}
		wg         sync.WaitGroup
	)
	for _, w := range workers {
		c := newRPCClient(t, []string{w.s.addr})
		for range perAgent {
			wg.Go(func() {
				var mine []mig.ID
				seen := map[uint32]bool{}
				for next.Add(1) <= batches {
					ids, origin, err := c.NextIDs(t.Context(), batch)
					if err != nil {
						t.Error(err)
						return
					}
					if origin.Datacenter != w.dc {
						t.Errorf("answer from datacenter %s, want %s", origin.Datacenter, w.dc)
						return
					}
					seen[origin.WorkerID] = true
					mine = append(mine, ids...)
				}
				mu.Lock()
				defer mu.Unlock()
				all = append(all, mine...)
				for id := range seen {
					workerOfDC[w.dc][id] = true
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(all) != batch*batches {
		t.Fatalf("%d IDs, want %d", len(all), batch*batches)
	}
	checkUnique(t, all)
	if got := fmt.Sprint(workerOfDC); got != "map[osaka:map[4:true 5:true] tokyo:map[0:true 1:true 2:true 3:true]]" {
		t.Errorf("worker IDs by datacenter: %s", got)
	}
}

// TestServeEtcdCut cuts a server off its etcd: /readyz turns 503 and
// NextIDs answers unavailable with retryable set, before etcd can give the
// worker ID to anyone else; after the cut heals the server claims a worker
// ID again and issues IDs above every earlier one.
func TestServeEtcdCut(t *testing.T) {
	t.Parallel()
	etcd := etcdEndpoint(t)
	proxy, err := faultproxy.New(strings.TrimPrefix(etcd, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	s := startServe(t, append([]string{"--etcd", "http://" + proxy.Addr(), "--workers", "0-3"}, fastFlags...)...)
	c := newRPCClient(t, []string{s.addr})
	before, _, err := c.NextIDs(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "/readyz before the cut (the sequences activated)", func() bool {
		code, _ := get(t, s.url()+"/readyz")
		return code == http.StatusOK
	})

	proxy.Cut()
	// The sequences stop first (a confirmation's right is shorter than
	// the worker's lease); the worker fences itself before its lease
	// could expire.
	took := waitFor(t, 10*time.Second, "/readyz saying the worker ID is lost after the cut", func() bool {
		code, body := get(t, s.url()+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "worker ID held: failed")
	})
	t.Logf("not ready %v after the cut", took)
	code, body := get(t, s.url()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "worker ID held: failed") {
		t.Errorf("/readyz during the cut: %d\n%s", code, body)
	}
	status, m := postJSON(t, s.url(), `{"count":3}`)
	meta, _ := m["meta"].(map[string]any)
	if status != http.StatusServiceUnavailable || m["code"] != "unavailable" || meta[migv1.MetaRetryable] != "true" {
		t.Errorf("NextIDs during the cut: status %d, %v; want 503, unavailable, retryable", status, m)
	}
	_, _, err = c.NextIDs(t.Context(), 1)
	var twerr twirp.Error
	if !errors.As(err, &twerr) || twerr.Code() != twirp.Unavailable || twerr.Meta(migv1.MetaRetryable) != "true" {
		t.Errorf("client NextIDs during the cut: %v, want unavailable and retryable", err)
	}
	if _, metrics := get(t, s.url()+"/metrics"); !strings.Contains(metrics, "mig_worker_id -1\n") || strings.Contains(metrics, "mig_worker_fences_total 0\n") {
		t.Errorf("/metrics during the cut does not show the fence")
	}

	proxy.Restore()
	took = waitFor(t, 15*time.Second, "/readyz turning 200 after the cut healed", func() bool {
		code, _ := get(t, s.url()+"/readyz")
		return code == http.StatusOK
	})
	t.Logf("ready again %v after the cut healed", took)
	after, _, err := c.NextIDs(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if after[0] <= before[len(before)-1] {
		t.Errorf("after the cut, ID %d is not above %d, issued before it", after[0], before[len(before)-1])
	}
}

// TestServeShutdownMidLoad stops a server (as SIGTERM does: its context
// ends) while clients are calling it: every answer a client got is valid,
// the server handed out exactly the IDs the clients received (no answer
// lost), and a new server on the same etcd and worker ID continues above
// every one of them.
func TestServeShutdownMidLoad(t *testing.T) {
	t.Parallel()
	etcd := etcdEndpoint(t)
	args := append([]string{"--etcd", etcd, "--workers", "7-7"}, fastFlags...)
	s := startServe(t, args...)
	ids, issued := loadUntilStopped(t, []string{s.addr}, 8, func() {
		if err := s.stop(); err != nil {
			t.Errorf("runServe: %v", err)
		}
	})
	if got := s.stoppedIssued(t); got != int64(len(ids)) {
		t.Errorf("the server issued %d IDs, the clients received %d", got, len(ids))
	}
	t.Logf("%d IDs in %d answers before the shutdown", len(ids), issued)
	checkAbove(t, startServe(t, args...).addr, ids)
}

// loadUntilStopped runs callers goroutines calling NextIDs on endpoints
// with counts of 1..50 until the servers stop answering, calls stop once
// some IDs have come back, and returns every ID received, unique, and the
// number of answers. Every error must come after stop began.
func loadUntilStopped(t *testing.T, endpoints []string, callers int, stop func()) (ids []mig.ID, answers int) {
	t.Helper()
	c := newRPCClient(t, endpoints)
	var (
		mu       sync.Mutex
		stopping atomic.Bool
		received atomic.Int64
		wg       sync.WaitGroup
	)
	for range callers {
		wg.Go(func() {
			var mine []mig.ID
			n := 0
			for {
				ids, _, err := c.NextIDs(context.WithoutCancel(t.Context()), 1+rand.IntN(50))
				if err != nil {
					if !stopping.Load() {
						t.Errorf("NextIDs before the shutdown: %v", err)
					}
					break
				}
				mine = append(mine, ids...)
				n++
				received.Add(1)
			}
			mu.Lock()
			defer mu.Unlock()
			ids = append(ids, mine...)
			answers += n
		})
	}
	waitFor(t, 30*time.Second, "200 answers", func() bool { return received.Load() >= 200 })
	stopping.Store(true)
	atStop := received.Load()
	stop()
	wg.Wait()
	// Requests in flight when the stop began are answered during it; how
	// many there were is up to the scheduler, so it is only logged.
	t.Logf("%d answers arrived after the stop began", received.Load()-atStop)
	checkUnique(t, ids)
	return ids, answers
}

// checkAbove fetches IDs from the server at addr and checks they are above
// every one of old.
func checkAbove(t *testing.T, addr string, old []mig.ID) {
	t.Helper()
	maxOld := old[0]
	for _, id := range old {
		maxOld = max(maxOld, id)
	}
	c := newRPCClient(t, []string{addr})
	for _, n := range []int{1, 1000} {
		ids, _, err := c.NextIDs(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		if ids[0] <= maxOld {
			t.Fatalf("after the restart, ID %d is not above %d, issued before it", ids[0], maxOld)
		}
	}
}
