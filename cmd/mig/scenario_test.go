package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadtestScenarioUsage: --scenario's flags are checked before
// anything starts, and flags that mean nothing with it are refused.
func TestLoadtestScenarioUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"unknown scenario", []string{"--scenario", "nosuch", "--scenario-mig", "/bin/true"}, `unknown scenario: "nosuch"`},
		{"with a target", []string{"--scenario", "kill", "--target", "127.0.0.1:1", "--scenario-mig", "/bin/true"}, "--target: not used with --scenario"},
		{"with a duration", []string{"--scenario", "kill", "--duration", "1s", "--scenario-mig", "/bin/true"}, "--duration: not used with --scenario"},
		{"fault too short", []string{"--scenario", "kill", "--scenario-duration", "10ms", "--scenario-mig", "/bin/true"}, "--scenario-duration 10ms"},
	}
	if !faultInjection {
		tests = append(tests, struct {
			name   string
			args   []string
			stderr string
		}{"production build", []string{"--scenario", "kill"}, "needs a mig built with -tags faultinject"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, status := runMig(t, nil, "", append([]string{"loadtest"}, tt.args...)...)
			if status != exitUsage || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("status %d, want %d, and stderr with %q\nstdout:\n%s\nstderr:\n%s", status, exitUsage, tt.stderr, stdout, stderr)
			}
		})
	}
}

// TestLoadtestScenarioFails: `mig loadtest --scenario partition` against
// servers with a deliberately broken self-fence exits 1 and prints the
// violations. (The scenarios themselves, passing and failing, are tested
// in package loadtest/scenario.)
func TestLoadtestScenarioFails(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a deployment of 6 servers and 6 etcd members")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build mig with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "mig-fault")
	if out, err := exec.Command(goTool, "build", "-tags", "faultinject", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags faultinject: %v\n%s", err, out)
	}
	stdout, stderr, status := runMig(t, nil, "", "loadtest", "--scenario", "partition", "--scenario-duration", "2s",
		"--scenario-mig", bin, "--scenario-broken-fence", "--scenario-no-seq")
	if status != exitFail || !strings.Contains(stdout, "FAIL partition") || !strings.Contains(stdout, "VIOLATION id_order") ||
		!strings.Contains(stderr, "a scenario failed") {
		t.Fatalf("status %d, want %d with the violations printed\nstdout:\n%s\nstderr:\n%s", status, exitFail, stdout, stderr)
	}
}
