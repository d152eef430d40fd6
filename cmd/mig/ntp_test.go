package main

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/fakentp"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migv1"
)

// startFakeNTP starts a fake NTP server on 127.0.0.1 whose clock is the
// host's plus offset, stopped when the test ends, and returns its address.
func startFakeNTP(t *testing.T, offset time.Duration) string {
	t.Helper()
	f, err := fakentp.Start(offset)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f.Addr()
}

// TestServeClockUnsafe checks NTP through the whole server: with the wall
// clock 5s off NTP time, past --ntp-max-offset, the worker is not ready
// and NextIDs answers unavailable, retryable, without issuing; within the
// limit it serves.
func TestServeClockUnsafe(t *testing.T) {
	t.Parallel()
	etcd := etcdEndpoint(t)
	far := startServe(t, "--etcd", etcd, "--workers", "0-1", "--ntp-servers", startFakeNTP(t, 5*time.Second), "--ntp-max-offset", "100ms")
	near := startServe(t, "--etcd", etcd, "--workers", "0-1", "--ntp-servers", startFakeNTP(t, 0), "--ntp-max-offset", "100ms")

	// The first NTP round runs at start; wait for its verdict.
	waitFor(t, 10*time.Second, "/readyz turning 503 on a clock 5s off", func() bool {
		code, _ := get(t, far.url()+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	code, body := get(t, far.url()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "clock safe: failed") || !strings.Contains(body, "worker ID held: ok") {
		t.Errorf("/readyz with the clock 5s off: %d\n%s", code, body)
	}
	_, _, err := newRPCClient(t, []string{far.addr}).NextIDs(t.Context(), 1)
	var twerr twirp.Error
	if !errors.As(err, &twerr) || twerr.Code() != twirp.Unavailable || twerr.Meta(migv1.MetaRetryable) != "true" || !strings.Contains(err.Error(), "clock unsafe") {
		t.Errorf("NextIDs with the clock 5s off: %v, want unavailable, retryable, clock unsafe", err)
	}
	_, metrics := get(t, far.url()+"/metrics")
	for _, want := range []string{"mig_ntp_safe 0\n", "mig_ntp_enabled 1\n", "mig_ids_issued_total 0\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics with the clock 5s off has no %q", want)
		}
	}
	// The offset measured is 5s give or take half a round trip: 4.9999...
	// on a slow run.
	if v, ok := sampleValue(metrics, "mig_ntp_offset_seconds"); !ok || v < 4.9 || v > 5.1 {
		t.Errorf("/metrics with the clock 5s off: mig_ntp_offset_seconds %v (found: %v), want about 5", v, ok)
	}

	// The other worker's clock agrees with its NTP server.
	waitFor(t, 10*time.Second, "/metrics showing an NTP answer", func() bool {
		_, m := get(t, near.url()+"/metrics")
		return !strings.Contains(m, "mig_ntp_last_success_timestamp_seconds 0\n")
	})
	waitFor(t, 10*time.Second, "/readyz with the clock on time (the sequences activated)", func() bool {
		code, _ := get(t, near.url()+"/readyz")
		return code == http.StatusOK
	})
	if _, _, err := newRPCClient(t, []string{near.addr}).NextIDs(t.Context(), 1); err != nil {
		t.Errorf("NextIDs with the clock on time: %v", err)
	}
}

// TestServeStartsAtNTPTime: a worker whose wall clock is an hour ahead
// of NTP time when it starts holds the hour from the start: it is ready,
// and its IDs are dated by NTP time, not by its wall clock.
func TestServeStartsAtNTPTime(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--etcd", etcdEndpoint(t), "--workers", "0-1", "--ntp-servers", startFakeNTP(t, -time.Hour), "--ntp-max-offset", "100ms")
	waitFor(t, 10*time.Second, "/readyz with the ID clock at NTP time", func() bool {
		code, _ := get(t, s.url()+"/readyz")
		return code == http.StatusOK
	})
	ids, _, err := newRPCClient(t, []string{s.addr}).NextIDs(t.Context(), 1)
	if err != nil {
		t.Fatalf("NextIDs with the wall clock an hour ahead, held: %v", err)
	}
	parts, err := mig.DefaultLayout().Decompose(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	dated := mig.DefaultLayout().TickTime(parts.Tick)
	if ntpNow := clock.NewReal().Now().Wall.Add(-time.Hour); dated.Sub(ntpNow).Abs() > 2*time.Second {
		t.Errorf("ID dated %v, want about NTP time %v", dated, ntpNow)
	}
	_, metrics := get(t, s.url()+"/metrics")
	if v, ok := sampleValue(metrics, "mig_clock_held_step_seconds"); !ok || v < 3599 || v > 3601 {
		t.Errorf("mig_clock_held_step_seconds %v (found: %v), want about 3600", v, ok)
	}
	if !strings.Contains(metrics, "mig_ntp_safe 1\n") {
		t.Error("/metrics: the clock is not safe at NTP time")
	}
	if !strings.Contains(s.logs.String(), "ahead of NTP time") {
		t.Errorf("no log line says the wall clock was ahead:\n%s", s.logs.String())
	}
}

// sampleValue returns the value of the unlabelled sample name in a
// Prometheus text exposition.
func sampleValue(exposition, name string) (float64, bool) {
	for line := range strings.SplitSeq(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
