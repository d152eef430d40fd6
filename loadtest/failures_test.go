package loadtest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/nettest"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/rpc/migclient"
)

func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestRunRefusedTarget: a target that refuses connections fails the run,
// and the report says so by endpoint; its clients back off instead of
// sending a request as soon as the last one failed.
func TestRunRefusedTarget(t *testing.T) {
	dead := nettest.RefusedAddr(t)
	for _, transport := range []string{"pooled", "net/http"} {
		t.Run(transport, func(t *testing.T) {
			var opts []migclient.Option
			if transport == "pooled" {
				opts = append(opts, migclient.WithHTTPClient(&http.Client{Transport: loadtest.NewTransport(clock.NewReal())}))
			}
			c, err := migclient.New([]string{dead}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			const clients, backoff, most = 2, 10 * ms, 40 * ms
			cfg := loadtest.Config{Clients: clients, Duration: 500 * ms, Backoff: backoff, MaxBackoff: most}
			rep := run(t, t.Context(), cfg, loadtest.Targets{IDs: c})
			r := rep.MIG
			if r.OK != 0 || r.Errors == 0 || !r.Check.OK() {
				t.Fatalf("%d ok, %d errors, check %s", r.OK, r.Errors, details(r.Check))
			}
			if len(r.Failures) != 1 || r.Failures[0] != (loadtest.Failure{Endpoint: dead, Cause: "connection refused", Count: r.Errors}) {
				t.Errorf("failures %+v, want %d refused at %s", r.Failures, r.Errors, dead)
			}
			want := "no request succeeded (" // then the count, then the cause
			if rep.OK || !strings.HasPrefix(rep.Reason, want) || !strings.Contains(rep.Reason, "connection refused at "+dead) {
				t.Errorf("report OK %v, reason %q", rep.OK, rep.Reason)
			}
			// Each client waits at least half of 10, 20, 40, 40, ... ms
			// after each failure: 5+10+20k ms before its (k+3)-th request,
			// so at most 26 requests in 500 ms. (Without the backoff,
			// thousands.)
			if max := int64(clients * (2 + (500-5-10)/20)); r.Requests > max {
				t.Errorf("%d requests in 500ms: the clients do not back off (at most %d)", r.Requests, max)
			}
		})
	}
}

// TestRunSeesFailover: attempts that failed on one endpoint and succeeded
// on the next are in the report, though no call failed.
func TestRunSeesFailover(t *testing.T) {
	dead, live := nettest.RefusedAddr(t), startIDServer(t, 11, nil)
	c, err := migclient.New([]string{dead}, migclient.WithRemote("live", live.url),
		migclient.WithHTTPClient(&http.Client{Transport: loadtest.NewTransport(clock.NewReal())}))
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, t.Context(), loadtest.Config{Clients: 2, Duration: 300 * ms}, loadtest.Targets{IDs: c})
	r := rep.MIG
	mustPass(t, &r)
	if len(r.Failures) != 1 || r.Failures[0].Endpoint != dead || r.Failures[0].Cause != "connection refused" {
		t.Errorf("failures %+v, want connections refused at %s", r.Failures, dead)
	}
	if r.Answers[hostOf(t, live.url)] != r.OK || !rep.OK {
		t.Errorf("answers %v for %d ok; report OK %v (%s)", r.Answers, r.OK, rep.OK, rep.Reason)
	}
}

// TestRunSpreadsIDs: with a client for each endpoint, every endpoint
// gets its share of the load.
func TestRunSpreadsIDs(t *testing.T) {
	a, b := startIDServer(t, 12, nil), startIDServer(t, 13, nil)
	rep := run(t, t.Context(), loadtest.Config{Clients: 4, Count: 400},
		loadtest.Targets{IDsEach: []loadtest.IDClient{newIDClient(t, a.url), newIDClient(t, b.url)}})
	r := rep.MIG
	mustPass(t, &r)
	for _, s := range []*idServer{a, b} {
		if n := r.Answers[hostOf(t, s.url)]; n < 100 {
			t.Errorf("endpoint %s answered %d of %d: %v", s.url, n, r.OK, r.Answers)
		}
	}
	if r.Check.Servers != 2 {
		t.Errorf("%d servers checked, want 2", r.Check.Servers)
	}
	if _, err := loadtest.Run(t.Context(), loadtest.Config{}, loadtest.Targets{IDsEach: []loadtest.IDClient{nil}}); err == nil {
		t.Error("a nil client in IDsEach was taken")
	}
}
