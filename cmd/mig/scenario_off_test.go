//go:build !faultinject

package main

import (
	"strings"
	"testing"
)

// TestProductionRefusesScenarios: a production build runs no fault
// scenario, and says which build does; its --help says so too.
func TestProductionRefusesScenarios(t *testing.T) {
	stdout, stderr, status := runMig(t, nil, "", "loadtest", "--scenario", "kill")
	if status != exitUsage || stdout != "" || !strings.Contains(stderr, "fault scenarios need a mig built with -tags faultinject") ||
		!strings.Contains(stderr, "go build -tags faultinject -o mig-fault ./cmd/mig && ./mig-fault loadtest --scenario kill") {
		t.Errorf("status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, exitUsage, stdout, stderr)
	}
	stdout, _, _ = runMig(t, nil, "", "loadtest", "--help")
	if !strings.Contains(stdout, "only a fault-injection build") || strings.Contains(stdout, "--scenario-") {
		t.Errorf("loadtest --help:\n%s", stdout)
	}
}
