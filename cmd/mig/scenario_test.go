package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The scenario command lives only in fault-injection builds, so these
// tests build one and run it as a process: `go test ./cmd/mig` (no tags)
// tests it all the same. scenario_off_test.go tests what a production
// build says instead.

// buildFaultMig builds mig with -tags faultinject into a temporary
// directory and returns its path (with -race when the tests run with it,
// to reuse the packages already built).
func buildFaultMig(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build mig with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "mig-fault")
	args := []string{"build", "-tags", "faultinject", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build -tags faultinject: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs bin with args in an environment free of MIG_ variables
// and returns its output and exit status.
func runBinary(t testing.TB, bin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MIG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return out.String(), errOut.String(), status
}

func TestLoadtestScenario(t *testing.T) {
	bin := buildFaultMig(t)

	// --scenario's flags are checked before anything starts, and flags
	// that mean nothing with it are refused.
	for _, tt := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"unknown scenario", []string{"--scenario", "nosuch", "--scenario-mig", "/bin/true"}, `unknown scenario: "nosuch"`},
		{"with a target", []string{"--scenario", "kill", "--target", "127.0.0.1:1", "--scenario-mig", "/bin/true"}, "--target: not used with --scenario"},
		{"with a duration", []string{"--scenario", "kill", "--duration", "1s", "--scenario-mig", "/bin/true"}, "--duration: not used with --scenario"},
		{"fault too short", []string{"--scenario", "kill", "--scenario-duration", "10ms", "--scenario-mig", "/bin/true"}, "--scenario-duration 10ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, status := runBinary(t, bin, append([]string{"loadtest"}, tt.args...)...)
			if status != exitUsage || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("status %d, want %d, and stderr with %q\nstdout:\n%s\nstderr:\n%s", status, exitUsage, tt.stderr, stdout, stderr)
			}
		})
	}

	// `mig loadtest --scenario partition` against servers with a
	// deliberately broken self-fence exits 1 and prints the violations.
	// (The scenarios themselves, passing and failing, are tested in
	// package loadtest/scenario.)
	t.Run("broken fence fails", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a deployment of 6 servers and 6 etcd members")
		}
		// A failed scenario keeps its logs (370 MB with the etcd data):
		// in the test's own directory, removed when it ends.
		stdout, stderr, status := runBinary(t, bin, "loadtest", "--scenario", "partition", "--scenario-duration", "2s",
			"--scenario-broken-fence", "--scenario-no-seq", "--scenario-dir", t.TempDir())
		if status != exitFail || !strings.Contains(stdout, "FAIL partition") || !strings.Contains(stdout, "VIOLATION id_order") ||
			!strings.Contains(stderr, "a scenario failed") {
			t.Fatalf("status %d, want %d with the violations printed\nstdout:\n%s\nstderr:\n%s", status, exitFail, stdout, stderr)
		}
	})
}

// TestProductionLinksNoHarness: the fault-injection harness is linked
// into the faultinject build only.
func TestProductionLinksNoHarness(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list dependencies with: %v", err)
	}
	harness := []string{"github.com/migsvc/mig/loadtest/scenario", "github.com/migsvc/mig/internal/faultproxy", "github.com/migsvc/mig/internal/etcdcluster"}
	for _, tags := range []string{"", "faultinject"} {
		out, err := exec.Command(goTool, "list", "-deps", "-tags", tags, ".").Output()
		if err != nil {
			t.Fatalf("go list -tags %q: %v", tags, err)
		}
		deps := strings.Fields(string(out))
		for _, h := range harness {
			if linked := slices.Contains(deps, h); linked != (tags == "faultinject") {
				t.Errorf("build with tags %q links %s: %v", tags, h, linked)
			}
		}
	}
}
