package loadtest

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of Run. A plain value; its JSON form is stable
// (fields are added, never renamed or removed).
type Report struct {
	MIG   Result  `json:"mig"`
	Redis *Result `json:"redis,omitempty"` // with Config.RedisAddr
	// Ratio is MIG's figures divided by Redis's, when both ran.
	Ratio *Ratio `json:"ratio,omitempty"`
	// OK is true when the run passed: no checker found a violation, and
	// some request succeeded on every system loaded (a run whose every
	// request failed proved nothing).
	OK bool `json:"ok"`
	// Reason says why the run failed, when it did.
	Reason string `json:"reason,omitempty"`
}

// Result is the outcome of the load on one system. A plain value.
type Result struct {
	System  string  `json:"system"` // "mig" or "redis"
	Mode    string  `json:"mode"`   // "ids" or "seq"
	Loop    string  `json:"loop"`   // "closed" or "open"
	Clients int     `json:"clients"`
	Rate    float64 `json:"rate"` // the open loop's target, requests a second
	Batch   int     `json:"batch"`
	Dist    string  `json:"dist,omitempty"` // seq mode's uid distribution
	// UIDs and UIDStride, in seq mode: the uids were UIDStride,
	// 2*UIDStride, ..., UIDs*UIDStride.
	UIDs      uint64 `json:"uids,omitempty,string"`
	UIDStride uint64 `json:"uid_stride,omitempty,string"`
	// Seed seeded the uid draws and the backoff's jitter. In JSON it is
	// a string, as every 64-bit number: a JavaScript or Lua number (and
	// jq's) loses integers above 2^53.
	Seed uint64 `json:"seed,string"`
	// Elapsed is the time from the start to the last answer, in seconds.
	Elapsed float64 `json:"elapsed_s"`
	// Requests completed: OK with an answer, Errors without. Canceled
	// requests were abandoned when the caller's context ended.
	Requests     int64            `json:"requests"`
	OK           int64            `json:"ok"`
	Errors       int64            `json:"errors"`
	Canceled     int64            `json:"canceled"`
	ErrorsByCode map[string]int64 `json:"errors_by_code"` // Twirp codes, or the Code constants
	// Answers counts the successful answers by the endpoint (host:port)
	// that gave them, where the client says which (ids mode, Redis).
	Answers map[string]int64 `json:"answers_by_endpoint,omitempty"`
	// Failures are the attempts that failed, by endpoint and cause, the
	// most frequent first. An attempt counts even when the client then
	// repeated the call on another endpoint, and it succeeded there: an
	// endpoint that refuses every connection shows here whatever became
	// of the calls. A call that failed on every endpoint counts once per
	// endpoint it tried.
	Failures []Failure `json:"failures,omitempty"`
	// Values are the IDs or sequences received.
	Values         int64   `json:"values"`
	RequestsPerSec float64 `json:"requests_per_s"`
	ValuesPerSec   float64 `json:"values_per_s"`
	// Latency of every completed request, answered or failed, in
	// microseconds; in the open loop from when the request was due.
	Latency Latency `json:"latency_us"`
	// SendLag, in the open loop, is how late each request was sent after
	// it was due, in microseconds: the wait behind earlier requests, and
	// the load generator's own lateness (Go's timers wake up to about a
	// millisecond late on an idle machine). It is part of Latency; when
	// the two are close, the load generator, not the server, set the
	// latency. Zero in the closed loop.
	SendLag Latency `json:"send_lag_us"`
	// Series is the latency and throughput of each Config.Interval.
	Series []Interval `json:"series"`
	// CPU is what the whole process spent during the phase.
	CPU CPU `json:"cpu"`
	// LongestUnavailable is the longest time, in seconds, a client went
	// from its last successful answer (or the start) to its next one
	// (or the end) while its requests failed.
	LongestUnavailable float64 `json:"longest_unavailable_s"`
	// StoppedEarly says why the load stopped before its duration or
	// count ("canceled", a full checker), if it did.
	StoppedEarly string  `json:"stopped_early,omitempty"`
	Check        Verdict `json:"check"`
}

// Interval is one point of the latency-over-time series. Latencies are in
// microseconds. A plain value.
type Interval struct {
	At       float64 `json:"at_s"`     // end of the interval, seconds since the start
	Seconds  float64 `json:"seconds"`  // its length
	Requests int64   `json:"requests"` // completed in it
	Errors   int64   `json:"errors"`   // of which failed
	Values   int64   `json:"values"`   // IDs or sequences received in it
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	Max      float64 `json:"max_us"`
}

// CPU is the CPU time the process used during a phase. When the servers
// run in another process (as with `mig loadtest`), it is the load
// generator's own cost: a check that the load generator was not the
// bottleneck. A plain value.
type CPU struct {
	Measured bool    `json:"measured"` // false where getrusage is not available
	User     float64 `json:"user_s"`
	System   float64 `json:"system_s"`
	// PerRequest is (User + System) / requests, in microseconds.
	PerRequest float64 `json:"per_request_us"`
}

// usage is a getrusage reading.
type usage struct{ user, sys time.Duration }

func newCPU(before, after usage, requests int64) CPU {
	c := CPU{Measured: true, User: (after.user - before.user).Seconds(), System: (after.sys - before.sys).Seconds()}
	if requests > 0 {
		c.PerRequest = (c.User + c.System) * 1e6 / float64(requests)
	}
	return c
}

// Ratio compares MIG with Redis: MIG's figure divided by Redis's (0 when
// Redis's is 0). Above 1 MIG did more (throughput) or took longer
// (latency). A plain value.
type Ratio struct {
	RequestsPerSec float64 `json:"requests_per_s"`
	ValuesPerSec   float64 `json:"values_per_s"`
	P50            float64 `json:"p50"`
	P99            float64 `json:"p99"`
}

// finish computes Ratio, OK and Reason.
func (r *Report) finish() {
	results := []*Result{&r.MIG}
	if r.Redis != nil {
		results = append(results, r.Redis)
	}
	var violations int64
	for _, res := range results {
		violations += res.Check.Violations
	}
	r.OK, r.Reason = true, ""
	switch {
	case violations > 0:
		r.OK, r.Reason = false, fmt.Sprintf("the checker found %d violations", violations)
	default:
		for _, res := range results {
			if res.OK == 0 {
				r.OK, r.Reason = false, res.noSuccess()
				break
			}
		}
	}
	if r.Redis == nil {
		return
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	r.Ratio = &Ratio{
		RequestsPerSec: div(r.MIG.RequestsPerSec, r.Redis.RequestsPerSec),
		ValuesPerSec:   div(r.MIG.ValuesPerSec, r.Redis.ValuesPerSec),
		P50:            div(r.MIG.Latency.P50, r.Redis.Latency.P50),
		P99:            div(r.MIG.Latency.P99, r.Redis.Latency.P99),
	}
}

// noSuccess says that no request of r succeeded, and what failed most.
func (r *Result) noSuccess() string {
	what := "no request succeeded"
	if r.System != "mig" {
		what = fmt.Sprintf("no request to %s succeeded", r.System)
	}
	switch {
	case r.Requests == 0:
		return what + " (none completed)"
	case len(r.Failures) > 0:
		f := r.Failures[0]
		at := f.Endpoint
		if at == "" {
			at = "an endpoint the error does not name"
		}
		return fmt.Sprintf("%s (%d failed; most often: %s at %s, %d times)", what, r.Errors, f.Cause, at, f.Count)
	}
	return fmt.Sprintf("%s (%d failed)", what, r.Errors)
}

// fmtMicros formats a latency in microseconds for people.
func fmtMicros(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.0fµs", us)
}

// WriteSummary writes r for people: each system's throughput, errors,
// latency, CPU and checker verdict, the violations found, and the ratio
// when Redis ran too.
func WriteSummary(w io.Writer, r *Report) error {
	var b strings.Builder
	results := []*Result{&r.MIG}
	if r.Redis != nil {
		results = append(results, r.Redis)
	}
	for _, res := range results {
		writeResult(&b, res)
	}
	if r.Ratio != nil {
		fmt.Fprintf(&b, "\nmig/redis: %.2fx requests/s, %.2fx %s/s, p50 %.2fx, p99 %.2fx\n",
			r.Ratio.RequestsPerSec, r.Ratio.ValuesPerSec, unitOf(r.MIG.Mode), r.Ratio.P50, r.Ratio.P99)
	}
	if r.OK {
		b.WriteString("\nPASS: every answer checked, no violation\n")
	} else {
		fmt.Fprintf(&b, "\nFAIL: %s\n", r.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// maxFailuresShown bounds the failure lines of a summary.
const maxFailuresShown = 10

func unitOf(mode string) string {
	if mode == ModeSeq.String() {
		return ModeSeq.unit()
	}
	return ModeIDs.unit()
}

func writeResult(b *strings.Builder, r *Result) {
	unit := unitOf(r.Mode)
	fmt.Fprintf(b, "== %s, %s mode, %s loop, %d clients", r.System, r.Mode, r.Loop, r.Clients)
	if r.Loop == "open" {
		fmt.Fprintf(b, " at %g requests/s", r.Rate)
	}
	fmt.Fprintf(b, ", batch %d", r.Batch)
	if r.Dist != "" {
		fmt.Fprintf(b, ", uids %s", r.Dist)
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "  elapsed     %.2fs", r.Elapsed)
	if r.StoppedEarly != "" {
		fmt.Fprintf(b, " (stopped early: %s)", r.StoppedEarly)
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "  requests    %d ok, %d failed, %d canceled\n", r.OK, r.Errors, r.Canceled)
	fmt.Fprintf(b, "  throughput  %.0f requests/s, %.0f %s/s\n", r.RequestsPerSec, r.ValuesPerSec, unit)
	if len(r.ErrorsByCode) > 0 {
		b.WriteString("  errors     ")
		for _, code := range slices.Sorted(maps.Keys(r.ErrorsByCode)) {
			fmt.Fprintf(b, " %s %d", code, r.ErrorsByCode[code])
		}
		b.WriteString("\n")
	}
	for i, f := range r.Failures {
		if i == maxFailuresShown {
			fmt.Fprintf(b, "              ... and %d more endpoint and cause pairs\n", len(r.Failures)-i)
			break
		}
		label := ""
		if i == 0 {
			label = "failed at"
		}
		at := cmp.Or(f.Endpoint, "(endpoint unknown)")
		fmt.Fprintf(b, "  %-11s %s: %s, %d attempts\n", label, at, f.Cause, f.Count)
	}
	if len(r.Answers) > 1 || len(r.Answers) > 0 && len(r.Failures) > 0 {
		b.WriteString("  answered by")
		for _, ep := range slices.Sorted(maps.Keys(r.Answers)) {
			fmt.Fprintf(b, " %s %d", ep, r.Answers[ep])
		}
		b.WriteString("\n")
	}
	l := r.Latency
	fmt.Fprintf(b, "  latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, %d requests",
		fmtMicros(l.P50), fmtMicros(l.P90), fmtMicros(l.P99), fmtMicros(l.P999), fmtMicros(l.Max), fmtMicros(l.Mean), l.Count)
	if r.Loop == "open" {
		b.WriteString(", from when each was due")
	}
	b.WriteString(")\n")
	if r.Loop == "open" {
		s := r.SendLag
		fmt.Fprintf(b, "  send lag    p50 %s  p90 %s  p99 %s  max %s  (sent after due: queueing and the generator's own lateness)\n",
			fmtMicros(s.P50), fmtMicros(s.P90), fmtMicros(s.P99), fmtMicros(s.Max))
	}
	if r.CPU.Measured {
		fmt.Fprintf(b, "  cpu         %.2fs user, %.2fs system: %.1fµs a request\n", r.CPU.User, r.CPU.System, r.CPU.PerRequest)
	}
	if r.LongestUnavailable > 0 {
		fmt.Fprintf(b, "  unavailable %.3fs at most, for one client\n", r.LongestUnavailable)
	}
	fmt.Fprintf(b, "  check       %s\n", r.Check.Summary())
	if r.Check.Porcupine.Ran {
		fmt.Fprintf(b, "  porcupine   %d operations on %d uids: %d not linearizable, %d undecided\n",
			r.Check.Porcupine.Ops, r.Check.Porcupine.UIDs, r.Check.Porcupine.Illegal, r.Check.Porcupine.Unknown)
	} else if r.Check.Porcupine.Note != "" && r.Check.Seqs > 0 {
		fmt.Fprintf(b, "  porcupine   %s\n", r.Check.Porcupine.Note)
	}
	for _, v := range r.Check.Details {
		fmt.Fprintf(b, "  VIOLATION   %s: %s\n", v.Kind, v.Message)
	}
	if n := r.Check.Violations - int64(len(r.Check.Details)); n > 0 {
		fmt.Fprintf(b, "  ... and %d more violations\n", n)
	}
}
