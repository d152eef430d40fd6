package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/mig"
)

// TestServePausedPastTTL pauses a `mig serve` process (SIGSTOP, as a VM
// freeze or a stalled host would) for longer than its lease TTL. etcd
// expires its lease, a second worker with the same one-ID range claims
// that worker ID and issues IDs, and requests are queued at the paused
// process on connections it has open. When it resumes (SIGCONT), none of
// those requests may get an ID at or below the ones the new holder issued
// before they were sent: that would be "backwards" for the worker ID.
//
// The process resumes with its generator running; what refuses is the
// deadline check Next and NextN make after reserving, or the fence, if
// its goroutines run first (Go runs expired timers before it hands out
// ready connections, so they usually do). workerid's
// TestNextFencedAtRequestTime holds those goroutines back to show the
// check alone suffices.
func TestServePausedPastTTL(t *testing.T) {
	t.Parallel()
	bin := buildMig(t)
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	args := append([]string{"--etcd", srv.Endpoints()[0], "--workers", "5-5"}, fastFlags...)

	a := startProcess(t, bin, args...)
	idsA, _, err := newRPCClient(t, []string{a.address()}).NextIDs(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	// Connections the process has accepted and served once, so that
	// after the pause their requests wait on reads it already started
	// (an idle keep-alive connection), not in its accept queue.
	const queued = 64
	conns := make([]*queuedConn, queued)
	for i := range conns {
		c, err := net.DialTimeout("tcp", a.address(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = &queuedConn{c: c, r: bufio.NewReader(c)}
		if ids, code := conns[i].nextIDs(t, 1); len(ids) != 1 {
			t.Fatalf("before the pause: %s", code)
		}
	}

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume) // so that it can shut down

	// etcd expires the paused worker's lease: its claim key goes.
	waitFor(t, 15*time.Second, "etcd expiring the paused worker's claim", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "/mig/workers/05", clientv3.WithCountOnly())
		return err == nil && resp.Count == 0
	})
	b := startServe(t, args...)
	idsB, origin, err := newRPCClient(t, []string{b.addr}).NextIDs(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if origin.WorkerID != 5 {
		t.Fatalf("the second worker holds %d, want 5", origin.WorkerID)
	}
	if idsB[0] <= idsA[len(idsA)-1] {
		t.Fatalf("the new holder's ID %d is not above the paused one's %d", idsB[0], idsA[len(idsA)-1])
	}
	maxB := idsB[len(idsB)-1]

	// Queue a request on every connection to the paused process: the
	// kernel buffers them for it.
	for _, c := range conns {
		c.send(t, 10)
	}
	resume()

	refused, answered := 0, 0
	for i, c := range conns {
		ids, code := c.receive(t)
		if code != "" {
			if code != "unavailable" {
				t.Errorf("request %d: %s, want unavailable", i, code)
			}
			refused++
			continue
		}
		answered++
		for _, id := range ids {
			if id <= maxB {
				p, _ := mig.DefaultLayout().Decompose(id)
				t.Errorf("request %d, sent after the new holder issued up to %d, got %d from worker %d (tick %d): backwards for the worker ID",
					i, maxB, id, p.Worker, p.Tick)
				break
			}
		}
	}
	t.Logf("after the pause: %d requests refused, %d answered with IDs", refused, answered)
}

// queuedConn is a keep-alive connection to a server, driven by hand so
// that a request can be sent while the server is paused and its answer
// read after.
type queuedConn struct {
	c net.Conn
	r *bufio.Reader
}

// send writes a JSON NextIDs request for count IDs.
func (q *queuedConn) send(t testing.TB, count int) {
	t.Helper()
	body := fmt.Sprintf(`{"count":%d}`, count)
	req := fmt.Sprintf("POST /twirp/mig.v1.IDService/NextIDs HTTP/1.1\r\nHost: mig\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := io.WriteString(q.c, req); err != nil {
		t.Fatal(err)
	}
}

// receive reads the answer to the request sent last: its IDs, or the
// Twirp error code.
func (q *queuedConn) receive(t testing.TB) (ids []mig.ID, code string) {
	t.Helper()
	_ = q.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(q.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		IDs  []string `json:"ids"`
		Code string   `json:"code"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %d %s: %v", resp.StatusCode, b, err)
	}
	if resp.StatusCode != http.StatusOK {
		if m.Code == "" {
			t.Fatalf("answer %d %s: no Twirp error code", resp.StatusCode, b)
		}
		return nil, m.Code
	}
	for _, s := range m.IDs {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("ID %q: %v", s, err)
		}
		ids = append(ids, mig.ID(v))
	}
	return ids, ""
}

// nextIDs sends a request and reads its answer.
func (q *queuedConn) nextIDs(t testing.TB, count int) ([]mig.ID, string) {
	t.Helper()
	q.send(t, count)
	return q.receive(t)
}
