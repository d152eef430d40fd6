package loadtest_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/migsvc/mig/loadtest"
)

// sampleReport is a report with both systems, a violation and a series.
func sampleReport() *loadtest.Report {
	series := []loadtest.Interval{
		{At: 1, Seconds: 1, Requests: 1000, Values: 10000, P50: 120, P99: 900, Max: 4000},
		{At: 2, Seconds: 1, Requests: 900, Errors: 3, Values: 9000, P50: 130, P99: 1500, Max: 250000},
		{At: 2.4, Seconds: 0.4, Requests: 400, Values: 4000, P50: 110, P99: 800, Max: 1200},
	}
	mig := loadtest.Result{
		System: "mig", Mode: "ids", Loop: "open", Clients: 10, Rate: 1000, Batch: 10, Seed: 7, Elapsed: 2.4,
		Requests: 2300, OK: 2297, Errors: 3, ErrorsByCode: map[string]int64{"unavailable": 3}, Values: 22970,
		RequestsPerSec: 958, ValuesPerSec: 9570, Latency: loadtest.Latency{Count: 2300, Mean: 200, P50: 120, P90: 300, P99: 1000, P999: 5000, Max: 250000},
		Series: series, CPU: loadtest.CPU{Measured: true, User: 0.5, System: 0.2, PerRequest: 304},
		Answers:  map[string]int64{"10.0.0.2:7070": 1500, "10.0.0.3:7070": 797},
		Failures: []loadtest.Failure{{Endpoint: "10.0.0.1:7070", Cause: "connection refused", Count: 5}, {Endpoint: "10.0.0.3:7070", Cause: "unavailable", Count: 3}},
		Check: loadtest.Verdict{Answers: 2297, IDs: 22970, Servers: 2, Violations: 1, ByKind: map[string]int64{loadtest.KindDuplicateID: 1},
			Details: []loadtest.Violation{{Kind: loadtest.KindDuplicateID, Message: "ID 5 received twice <script>"}}},
	}
	redis := mig
	redis.System, redis.Check = "redis", loadtest.Verdict{Answers: 2300, IDs: 23000, Servers: 1, ByKind: map[string]int64{}}
	redis.Series = slices.Clone(series)
	redis.Answers, redis.Failures = nil, nil
	r := &loadtest.Report{MIG: mig, Redis: &redis, Ratio: &loadtest.Ratio{RequestsPerSec: 1, ValuesPerSec: 1, P50: 1, P99: 1}, Reason: "the checker found 1 violations"}
	return r
}

// TestReportJSONIsStable pins the JSON field names: machines read them.
func TestReportJSONIsStable(t *testing.T) {
	b, err := json.Marshal(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		o, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v is not an object", v)
		}
		var ks []string
		for k := range o {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	res := m["mig"].(map[string]any)
	tests := []struct {
		name string
		got  []string
		want string
	}{
		{"report", keys(m), "mig ok ratio reason redis"},
		{"result", keys(res), "answers_by_endpoint batch canceled check clients cpu elapsed_s errors errors_by_code failures latency_us longest_unavailable_s loop mode ok rate requests requests_per_s seed send_lag_us series system values values_per_s"},
		{"failure", keys(res["failures"].([]any)[0]), "cause count endpoint"},
		{"latency", keys(res["latency_us"]), "count max mean p50 p90 p99 p99_9"},
		{"interval", keys(res["series"].([]any)[0]), "at_s errors max_us p50_us p99_us requests seconds values"},
		{"cpu", keys(res["cpu"]), "measured per_request_us system_s user_s"},
		{"check", keys(res["check"]), "answers by_kind details ids porcupine seqs servers uids unrecorded violations"},
		{"porcupine", keys(res["check"].(map[string]any)["porcupine"]), "illegal ops ran uids unknown"},
		{"ratio", keys(m["ratio"]), "p50 p99 requests_per_s values_per_s"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.got, " "); got != tt.want {
			t.Errorf("%s fields:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

// TestReportJSON64BitStrings: the seed and the uids, 64-bit numbers,
// are JSON strings: a JavaScript or Lua number (and jq's) rounds
// integers above 2^53.
func TestReportJSON64BitStrings(t *testing.T) {
	r := sampleReport()
	r.MIG.Seed = 1<<63 + 1
	r.MIG.Mode, r.MIG.UIDs, r.MIG.UIDStride = "seq", 1_000_000, 4294
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"seed":"9223372036854775809"`, `"uids":"1000000"`, `"uid_stride":"4294"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	var back loadtest.Report
	if err := json.Unmarshal(b, &back); err != nil || back.MIG.Seed != r.MIG.Seed || back.MIG.UIDStride != 4294 {
		t.Fatalf("read back seed %d, stride %d: %v", back.MIG.Seed, back.MIG.UIDStride, err)
	}
}

func TestWriteSummary(t *testing.T) {
	var out bytes.Buffer
	if err := loadtest.WriteSummary(&out, sampleReport()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"== mig, ids mode, open loop, 10 clients at 1000 requests/s, batch 10",
		"throughput  958 requests/s, 9570 IDs/s",
		"errors      unavailable 3",
		"p50 120µs  p90 300µs  p99 1.00ms  p99.9 5.00ms  max 250.00ms",
		"from when each was due",
		"send lag    p50 ",
		"cpu         0.50s user, 0.20s system: 304.0µs a request",
		"check       FAILED: 1 violations (duplicate_id 1)",
		"VIOLATION   duplicate_id: ID 5 received twice",
		"== redis",
		"mig/redis: 1.00x requests/s",
		"failed at   10.0.0.1:7070: connection refused, 5 attempts",
		"            10.0.0.3:7070: unavailable, 3 attempts",
		"answered by 10.0.0.2:7070 1500 10.0.0.3:7070 797",
		"FAIL: the checker found 1 violations",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestWritePlot(t *testing.T) {
	var out bytes.Buffer
	if err := loadtest.WritePlot(&out, sampleReport()); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") && !strings.Contains(page, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("the page is not self-contained or not escaped")
	}
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(page, -1)
	if len(svgs) != 2 {
		t.Fatalf("%d SVG plots, want 2 (latency, throughput)", len(svgs))
	}
	for _, svg := range svgs {
		d := xml.NewDecoder(strings.NewReader(svg))
		lines := 0
		for {
			tok, err := d.Token()
			if err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("SVG is not well-formed: %v", err)
				}
				break
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
				lines++
			}
		}
		if lines == 0 {
			t.Errorf("an SVG without lines:\n%s", svg)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if loadtest.IsTerminal(f) || loadtest.IsTerminal(&bytes.Buffer{}) {
		t.Error("a file or a buffer is taken for a terminal")
	}
}
