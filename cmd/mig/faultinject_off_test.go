//go:build !faultinject

package main

import (
	"strings"
	"testing"
)

// TestProductionRefusesFaultFlags: a production build (no -tags
// faultinject) has no fault-injection flags at all, so `mig serve` refuses
// them, from the command line and from the environment alike, before it
// touches anything.
func TestProductionRefusesFaultFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--fault-clock-file", "/tmp/offset"},
		{"serve", "--fault-clock-rate", "0.5"},
	} {
		stdout, stderr, status := runMig(t, nil, "", args...)
		if status != exitUsage || !strings.Contains(stderr, "flag provided but not defined: -"+strings.TrimPrefix(args[1], "--")) || stdout != "" {
			t.Errorf("mig %s: status %d, want %d (unknown flag)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), status, exitUsage, stdout, stderr)
		}
	}
	// Nor does --help offer them; the environment sets only flags that
	// exist, so MIG_FAULT_CLOCK_FILE cannot switch anything on either.
	stdout, _, _ := runMig(t, map[string]string{"MIG_FAULT_CLOCK_FILE": "/tmp/offset"}, "", "serve", "--help")
	if strings.Contains(stdout, "--fault-") || faultInjection {
		t.Errorf("a production build offers fault injection:\n%s", stdout)
	}
}
