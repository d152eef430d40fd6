package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// deployDir is the repository's deploy/ directory, seen from this package.
const deployDir = "../../deploy"

// metricName matches the names of metrics in PromQL: ours (mig_) and
// those of the Go and process collectors that mig serve registers too.
var metricName = regexp.MustCompile(`\b(?:mig|go|process)_[a-zA-Z0-9_]+\b`)

// TestDeployMetricsExported: every metric that deploy/alerts.yml and
// deploy/grafana-dashboard.json query is one a real mig serve exports, by
// the exact name of the exposition (counters with _total, histograms as
// _bucket, _sum and _count). A renamed metric otherwise leaves an alert
// that can never fire and a panel that stays empty.
func TestDeployMetricsExported(t *testing.T) {
	used := map[string][]string{} // metric -> where
	for _, e := range alertExprs(t, filepath.Join(deployDir, "alerts.yml")) {
		for _, m := range metricName.FindAllString(e, -1) {
			used[m] = append(used[m], "alerts.yml: "+e)
		}
	}
	alertNames := len(used)
	for _, e := range dashboardExprs(t, filepath.Join(deployDir, "grafana-dashboard.json")) {
		for _, m := range metricName.FindAllString(e, -1) {
			used[m] = append(used[m], "grafana-dashboard.json: "+e)
		}
	}
	// Guards against a parser that finds nothing and so checks nothing.
	if alertNames < 15 || len(used) < 35 {
		t.Fatalf("found only %d metric names in alerts.yml, %d in all: %v", alertNames, len(used), slices.Sorted(maps.Keys(used)))
	}

	s := startServe(t, append([]string{"--etcd", etcdEndpoint(t)}, fastFlags...)...)
	// Vectors appear once a request has been counted: ask for an ID and a
	// sequence first.
	if code, m := postJSON(t, s.url(), `{"count":2}`); code != 200 {
		t.Fatalf("NextIDs: %d %v", code, m)
	}
	c := newRPCClient(t, []string{s.url()})
	waitFor(t, 10*time.Second, "a sequence served", func() bool {
		_, err := c.NextSeq(t.Context(), 1)
		return err == nil
	})
	code, body := get(t, s.url()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	exported := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		exported[name] = true
	}
	if !exported["mig_build_info"] {
		t.Errorf("mig_build_info not exported")
	}
	for _, m := range slices.Sorted(maps.Keys(used)) {
		if !exported[m] {
			t.Errorf("%s is not exported by mig serve; used in:\n  %s", m, strings.Join(used[m], "\n  "))
		}
	}
}

// alertExprs returns the expr of every rule in a Prometheus rules file:
// single-line values, and block values ("expr: |") to the end of their
// indentation.
func alertExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimLeft(lines[i], " ")
		rest, ok := strings.CutPrefix(trimmed, "expr:")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest != "|" && rest != ">" {
			out = append(out, rest)
			continue
		}
		indent := len(lines[i]) - len(trimmed)
		var block []string
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			block = append(block, strings.TrimSpace(next))
			i++
		}
		out = append(out, strings.Join(block, " "))
	}
	if len(out) == 0 {
		t.Fatalf("%s: no expr found", path)
	}
	return out
}

// dashboardExprs returns every "expr" of a Grafana dashboard, at any depth.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(d)
	return out
}

// TestDeployUnit checks what deploy/mig.service must get right beyond its
// syntax (which .ci/run checks with systemd-analyze verify): systemd must
// not kill mig serve before its clean shutdown can finish, state lives at
// an absolute path under /var/lib/mig, it starts once the clock is
// synchronised, and every variable of the example environment file is a
// flag of mig serve.
func TestDeployUnit(t *testing.T) {
	unit := readKeyValues(t, filepath.Join(deployDir, "mig.service"), "=")
	env := readKeyValues(t, filepath.Join(deployDir, "mig.env"), "=")

	environment := map[string]string{}
	for _, kv := range unit["Environment"] {
		k, v, _ := strings.Cut(kv, "=")
		environment[k] = v
	}
	for k, vs := range env { // EnvironmentFile= wins over Environment=
		environment[k] = vs[len(vs)-1]
	}
	shutdown, err := time.ParseDuration(environment["MIG_SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("MIG_SHUTDOWN_TIMEOUT: %v", err)
	}
	stop, err := time.ParseDuration(last(unit["TimeoutStopSec"]))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	// Drain (half the timeout), in-flight requests, the worker's release,
	// the sequence node's release: see runServe's shutdown order.
	if worst := shutdown/2 + 3*shutdown; stop <= worst {
		t.Errorf("TimeoutStopSec %v: not above the %v a clean shutdown may take with --shutdown-timeout %v", stop, worst, shutdown)
	}
	if dir := environment["MIG_DATA_DIR"]; !filepath.IsAbs(dir) || !strings.HasPrefix(dir, "/var/lib/mig/") {
		t.Errorf("MIG_DATA_DIR %q: want an absolute path under /var/lib/mig", dir)
	}
	for key, want := range map[string]string{"Restart": "always", "StateDirectory": "mig", "User": "mig", "EnvironmentFile": "/etc/mig/mig.env", "ExecStart": "/usr/local/bin/mig serve"} {
		if got := last(unit[key]); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}

	// A wrong boot clock would date the first IDs: start after the host
	// says its clock is synchronised.
	for _, key := range []string{"Wants", "After"} {
		if !slices.Contains(unit[key], "time-sync.target") {
			t.Errorf("%s= %q: want time-sync.target among them", key, unit[key])
		}
	}

	fs := flag.NewFlagSet("mig serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defineServeFlags(fs)
	vars := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { vars[envVar(f.Name)] = true })
	for k := range environment {
		if !vars[k] {
			t.Errorf("%s (mig.service or mig.env) sets no flag of mig serve", k)
		}
	}
}

// readKeyValues reads KEY<sep>VALUE lines, skipping comments, blank lines
// and [sections]; a key may repeat.
func readKeyValues(t *testing.T, path, sep string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, sep)
		if !ok {
			t.Fatalf("%s: %q is not KEY%sVALUE", path, line, sep)
		}
		out[k] = append(out[k], v)
	}
	return out
}

func last(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}
