package main

import (
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc/migv1"
)

// ntpEpochOffset is the seconds from 1900 (NTP's epoch) to 1970.
const ntpEpochOffset = 2_208_988_800

// startFakeNTP answers NTP queries on 127.0.0.1 with a clock offset from
// this host's by offset: it echoes the request's transmit timestamp as the
// origin and stamps its own times with now + offset.
func startFakeNTP(t *testing.T, offset time.Duration) string {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	src := clock.NewReal()
	go func() {
		buf := make([]byte, 128)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return // closed
			}
			if n < 48 {
				continue
			}
			resp := make([]byte, 48)
			resp[0] = 0<<6 | 4<<3 | 4 // no leap warning, version 4, server
			resp[1] = 1               // stratum 1
			resp[3] = 0xec            // precision: 2^-20 s
			copy(resp[12:16], "FAKE")
			now := src.Now().Wall.Add(offset)
			putNTPTime(resp[16:24], now.Add(-time.Second)) // reference time
			copy(resp[24:32], buf[40:48])                  // origin: the request's transmit time
			putNTPTime(resp[32:40], now)                   // receive
			putNTPTime(resp[40:48], now)                   // transmit
			_, _ = conn.WriteToUDP(resp, from)
		}
	}()
	return conn.LocalAddr().String()
}

func putNTPTime(b []byte, t time.Time) {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	binary.BigEndian.PutUint64(b, secs<<32|frac)
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
