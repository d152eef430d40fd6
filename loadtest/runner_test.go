package loadtest_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/internal/nettest"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migclient"
)

func run(t *testing.T, ctx context.Context, cfg loadtest.Config, targets loadtest.Targets) *loadtest.Report {
	t.Helper()
	rep, err := loadtest.Run(ctx, cfg, targets)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// mustPass fails the test unless r is a clean run: every request answered,
// every answer checked, no violation.
func mustPass(t *testing.T, r *loadtest.Result) {
	t.Helper()
	if r.OK == 0 || r.Errors != 0 || !r.Check.OK() || r.Check.Answers != r.OK || r.Check.Unrecorded != 0 {
		t.Fatalf("%s: %d ok, %d errors %v, check %s", r.System, r.OK, r.Errors, r.ErrorsByCode, details(r.Check))
	}
	if r.Latency.Count != r.Requests || r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
		t.Errorf("%s: latency %+v for %d requests", r.System, r.Latency, r.Requests)
	}
	var n int64
	for _, iv := range r.Series {
		n += iv.Requests
	}
	if len(r.Series) == 0 || n != r.Requests {
		t.Errorf("%s: series of %d intervals adds up to %d requests, want %d", r.System, len(r.Series), n, r.Requests)
	}
}

func TestRunIDs(t *testing.T) {
	a, b := startIDServer(t, 1, nil), startIDServer(t, 2, nil)
	client := newIDClient(t, a.url, b.url)
	tests := []struct {
		name string
		cfg  loadtest.Config
		// want is the exact number of requests, when the run is by count.
		want int64
	}{
		{name: "closed loop", cfg: loadtest.Config{Clients: 4, Duration: 400 * ms, Batch: 10, Interval: 100 * ms}},
		{name: "open loop", cfg: loadtest.Config{Clients: 4, Rate: 400, Duration: 500 * ms, Batch: 3, Interval: 100 * ms}},
		{name: "closed loop by count", cfg: loadtest.Config{Clients: 3, Count: 200, Batch: 1000}, want: 200},
		{name: "open loop by count", cfg: loadtest.Config{Clients: 2, Rate: 1000, Count: 100}, want: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := run(t, t.Context(), tt.cfg, loadtest.Targets{IDs: client})
			r := &rep.MIG
			mustPass(t, r)
			if !rep.OK || rep.Redis != nil || rep.Ratio != nil {
				t.Errorf("report OK %v, redis %v, ratio %v", rep.OK, rep.Redis, rep.Ratio)
			}
			if r.Values != r.OK*int64(max(tt.cfg.Batch, 1)) || r.Check.IDs != r.Values {
				t.Errorf("%d values, %d checked, for %d answers of %d", r.Values, r.Check.IDs, r.OK, tt.cfg.Batch)
			}
			if tt.want > 0 && r.Requests != tt.want {
				t.Errorf("%d requests, want %d", r.Requests, tt.want)
			}
			if tt.cfg.Rate > 0 && tt.want == 0 {
				// The schedule has Rate*Duration requests; a slow start
				// may leave a few for after the end.
				if sched := int64(tt.cfg.Rate * tt.cfg.Duration.Seconds()); r.Requests < sched*8/10 || r.Requests > sched {
					t.Errorf("%d requests at %g/s for %v", r.Requests, tt.cfg.Rate, tt.cfg.Duration)
				}
			}
			if r.Loop != map[bool]string{true: "open", false: "closed"}[tt.cfg.Rate > 0] || r.Mode != "ids" || r.Seed == 0 {
				t.Errorf("result %s/%s/seed %d", r.Loop, r.Mode, r.Seed)
			}
			if open := tt.cfg.Rate > 0; open && r.SendLag.Count != r.Requests || !open && r.SendLag.Count != 0 {
				t.Errorf("send lag of %d requests, for %d requests in the %s loop", r.SendLag.Count, r.Requests, r.Loop)
			}
			if r.CPU.Measured && r.CPU.PerRequest <= 0 {
				t.Errorf("cpu %+v", r.CPU)
			}
		})
	}
}

func TestRunSeq(t *testing.T) {
	tests := []struct {
		name string
		cfg  loadtest.Config
	}{
		// By count, so that porcupine's share stays small (its search
		// grows faster than linearly with the operations of one uid).
		{"uniform, one at a time", loadtest.Config{Mode: loadtest.ModeSeq, Clients: 4, Count: 5000, Dist: loadtest.Dist{UIDs: 50}}},
		{"hot set, batches", loadtest.Config{Mode: loadtest.ModeSeq, Clients: 8, Count: 2000, Batch: 5, Dist: loadtest.Dist{Kind: loadtest.DistHot, UIDs: 1000}}},
		{"zipf, open loop", loadtest.Config{Mode: loadtest.ModeSeq, Clients: 4, Rate: 1000, Duration: 300 * ms, Batch: 3, Dist: loadtest.Dist{Kind: loadtest.DistZipf, UIDs: 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := run(t, t.Context(), tt.cfg, loadtest.Targets{Seq: newFakeSeq()})
			r := &rep.MIG
			mustPass(t, r)
			batch := int64(max(tt.cfg.Batch, 1))
			if r.Values != r.OK*batch || r.Check.Seqs != r.Values || r.Check.UIDs == 0 || r.Dist == "" {
				t.Errorf("%d values, %d checked over %d uids, for %d answers of %d (%s)", r.Values, r.Check.Seqs, r.Check.UIDs, r.OK, batch, r.Dist)
			}
			if !r.Check.Porcupine.Ran || r.Check.Porcupine.Illegal != 0 || r.Check.Porcupine.Ops != int(r.Values) {
				t.Errorf("porcupine %+v", r.Check.Porcupine)
			}
		})
	}
}

// TestRunCatchesBrokenServices runs the load against services that break
// their promises once, and expects the run to fail with the right kind.
func TestRunCatchesBrokenServices(t *testing.T) {
	srv := startIDServer(t, 3, nil)
	seq := newFakeSeq()
	seq.rollbackAt = 20
	tests := []struct {
		name    string
		cfg     loadtest.Config
		targets loadtest.Targets
		kind    string
	}{
		{"duplicate ID", loadtest.Config{Clients: 2, Count: 50, Batch: 2}, loadtest.Targets{IDs: &dupIDs{c: newIDClient(t, srv.url), dupAt: 30}}, loadtest.KindDuplicateID},
		{"sequence rollback", loadtest.Config{Mode: loadtest.ModeSeq, Clients: 1, Count: 50, Dist: loadtest.Dist{UIDs: 1}}, loadtest.Targets{Seq: seq}, loadtest.KindSeqRollback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := run(t, t.Context(), tt.cfg, tt.targets)
			if rep.OK || rep.MIG.Check.ByKind[tt.kind] == 0 {
				t.Fatalf("report OK %v, check %s", rep.OK, details(rep.MIG.Check))
			}
			var out bytes.Buffer
			if err := loadtest.WriteSummary(&out, rep); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "VIOLATION   "+tt.kind) || !strings.Contains(out.String(), "FAIL") {
				t.Errorf("summary does not show the violation:\n%s", out.String())
			}
		})
	}
}

// TestOpenLoopShowsStall stalls one request of a server for half a
// second. One client in a closed loop waits with it and then carries on:
// one slow request in thousands, invisible below the maximum. The open
// loop keeps its schedule, so every request due during the stall waits
// for it too, and the wait is counted: the high percentiles show it.
func TestOpenLoopShowsStall(t *testing.T) {
	const stall = 500 * ms
	var lag loadtest.Latency
	measure := func(rate float64) loadtest.Latency {
		srv := startIDServer(t, 4, func(s *idServer) { s.stallAt, s.stall = 20, stall })
		rep := run(t, t.Context(), loadtest.Config{Clients: 1, Rate: rate, Duration: 1500 * ms}, loadtest.Targets{IDs: newIDClient(t, srv.url)})
		mustPass(t, &rep.MIG)
		lag = rep.MIG.SendLag
		return rep.MIG.Latency
	}
	open := measure(100)
	if lag.Max < float64(stall/time.Microsecond)*0.8 {
		t.Errorf("open loop: the request due after the stall was sent %vµs late, want about %v", lag.Max, stall)
	}
	closed := measure(0)
	t.Logf("open loop: %+v", open)
	t.Logf("closed loop: %+v", closed)
	if open.P90 < float64(100*ms/time.Microsecond) || open.Max < float64(stall/time.Microsecond)*0.9 {
		t.Errorf("open loop p90 %s, max %s: the stall is hidden", time.Duration(open.P90)*time.Microsecond, time.Duration(open.Max)*time.Microsecond)
	}
	if closed.Max < float64(stall/time.Microsecond)*0.9 || closed.P90 > open.P90/10 {
		t.Errorf("closed loop p90 %v, max %v; want the stall in max only", closed.P90, closed.Max)
	}
}

func TestRunErrorsAndUnavailability(t *testing.T) {
	srv := startIDServer(t, 5, nil)
	fail := error(mig.ErrFenced)
	srv.fail.Store(&fail)
	rep := run(t, t.Context(), loadtest.Config{Clients: 2, Count: 20}, loadtest.Targets{IDs: newIDClient(t, srv.url)})
	r := rep.MIG
	if r.Errors != 20 || r.OK != 0 || r.ErrorsByCode["unavailable"] != 20 || r.LongestUnavailable <= 0 {
		t.Fatalf("%d errors %v, %d ok, unavailable for %gs", r.Errors, r.ErrorsByCode, r.OK, r.LongestUnavailable)
	}
	if !r.Check.OK() {
		t.Errorf("failed requests are not violations: %s", details(r.Check))
	}
	// But a run of nothing but failures proved nothing: it fails, and
	// says why.
	if rep.OK || !strings.HasPrefix(rep.Reason, "no request succeeded (20 failed; most often: unavailable at ") {
		t.Errorf("report OK %v, reason %q", rep.OK, rep.Reason)
	}
}

func TestRunStopsEarly(t *testing.T) {
	srv := startIDServer(t, 6, nil)
	client := newIDClient(t, srv.url)
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var progress bytes.Buffer
		cfg := loadtest.Config{Clients: 2, Duration: time.Hour, Interval: 50 * ms, Progress: &cancelAfter{w: &progress, n: 3, cancel: cancel}}
		rep := run(t, ctx, cfg, loadtest.Targets{IDs: client})
		if rep.MIG.StoppedEarly != "canceled" || rep.MIG.Elapsed > 60 || !rep.OK {
			t.Errorf("stopped early %q after %gs, OK %v", rep.MIG.StoppedEarly, rep.MIG.Elapsed, rep.OK)
		}
	})
	t.Run("checker full", func(t *testing.T) {
		cfg := loadtest.Config{Clients: 2, Duration: time.Hour, Check: loadtest.CheckConfig{MaxRecords: 100}}
		rep := run(t, t.Context(), cfg, loadtest.Targets{IDs: client})
		r := rep.MIG
		if !strings.Contains(r.StoppedEarly, "MaxRecords") || r.Check.Unrecorded == 0 || r.Check.Answers != 50 {
			t.Errorf("stopped early %q, %d answers checked, %d not", r.StoppedEarly, r.Check.Answers, r.Check.Unrecorded)
		}
	})
}

// cancelAfter cancels a context after n progress lines.
type cancelAfter struct {
	w      *bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return c.w.Write(p)
}

func TestRunRedisSideBySide(t *testing.T) {
	srv := startIDServer(t, 7, nil)
	redis := startFakeRedis(t)
	tests := []struct {
		name    string
		cfg     loadtest.Config
		targets loadtest.Targets
	}{
		{"ids", loadtest.Config{Clients: 3, Duration: 300 * ms, Batch: 10, RedisAddr: redis.addr}, loadtest.Targets{IDs: newIDClient(t, srv.url)}},
		{"seq batches", loadtest.Config{Mode: loadtest.ModeSeq, Clients: 3, Duration: 300 * ms, Batch: 4, Dist: loadtest.Dist{UIDs: 100}, RedisAddr: redis.addr}, loadtest.Targets{Seq: newFakeSeq()}},
		{"open loop", loadtest.Config{Clients: 2, Rate: 300, Duration: 300 * ms, RedisAddr: redis.addr}, loadtest.Targets{IDs: newIDClient(t, srv.url)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := run(t, t.Context(), tt.cfg, tt.targets)
			mustPass(t, &rep.MIG)
			if rep.Redis == nil || rep.Ratio == nil {
				t.Fatalf("no redis result")
			}
			mustPass(t, rep.Redis)
			if rep.Redis.System != "redis" || rep.Redis.Values != rep.Redis.OK*int64(max(tt.cfg.Batch, 1)) || rep.Ratio.RequestsPerSec <= 0 || !rep.OK {
				t.Errorf("redis %+v, ratio %+v", rep.Redis, rep.Ratio)
			}
			var out bytes.Buffer
			if err := loadtest.WriteSummary(&out, rep); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"== mig", "== redis", "mig/redis:", "PASS"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestRunRefuses(t *testing.T) {
	closedAddr := nettest.RefusedAddr(t)
	srv := startIDServer(t, 8, nil)
	client := newIDClient(t, srv.url)
	tests := []struct {
		name    string
		cfg     loadtest.Config
		targets loadtest.Targets
		want    error
	}{
		{"no ID client", loadtest.Config{}, loadtest.Targets{Seq: newFakeSeq()}, loadtest.ErrNoClient},
		{"no seq client", loadtest.Config{Mode: loadtest.ModeSeq}, loadtest.Targets{IDs: client}, loadtest.ErrNoClient},
		{"bad config", loadtest.Config{Clients: -1}, loadtest.Targets{IDs: client}, loadtest.ErrConfig},
		{"redis unreachable", loadtest.Config{Count: 5, RedisAddr: closedAddr}, loadtest.Targets{IDs: client}, loadtest.ErrRedis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := loadtest.Run(t.Context(), tt.cfg, tt.targets)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if errors.Is(err, loadtest.ErrRedis) && (rep == nil || rep.MIG.OK != 5) {
				t.Errorf("the MIG phase's report is missing: %+v", rep)
			}
		})
	}
}

func TestProgress(t *testing.T) {
	srv := startIDServer(t, 9, nil)
	client := newIDClient(t, srv.url)
	for _, terminal := range []bool{false, true} {
		var out bytes.Buffer
		cfg := loadtest.Config{Clients: 2, Duration: 350 * ms, Interval: 100 * ms, Progress: &out, Terminal: terminal}
		rep := run(t, t.Context(), cfg, loadtest.Targets{IDs: client})
		s := out.String()
		lines := strings.Count(s, "\n")
		crs := strings.Count(s, "\r")
		if !strings.Contains(s, "mig ids closed-loop") || !strings.Contains(s, "last 0.1s: ") || !strings.Contains(s, "req/s") ||
			!strings.Contains(s, "|  so far: 0 errors, p99 ") || !strings.Contains(s, "|  in all: 0 errors, p99 ") {
			t.Errorf("progress %q", s)
		}
		// A line an interval, and one at the end, unless the end fell on
		// an interval's.
		n := len(rep.MIG.Series)
		writes := lines
		if terminal {
			writes = crs
		}
		if terminal && lines != 1 || !terminal && crs != 0 || writes < n || writes > n+1 {
			t.Errorf("terminal %v: %d lines, %d carriage returns for %d intervals:\n%q", terminal, lines, crs, n, s)
		}
		if !strings.Contains(s[strings.LastIndexAny(strings.TrimSuffix(s, "\n"), "\r\n")+1:], "done, average: ") {
			t.Errorf("the last line is not the run's average:\n%q", s)
		}
	}
}

var _ loadtest.IDClient = (*migclient.Client)(nil)
