//go:build !faultinject

package main

// Production builds: no fault injection. faultinject.go, built only with
// -tags faultinject, defines the same names with the --fault-* flags of
// `mig serve`; here those flags do not exist, so a production binary
// refuses them as unknown flags (exit status 2).

import (
	"context"
	"flag"
	"log/slog"
	"net/http"

	"github.com/migsvc/mig/clock"
)

// faultInjection reports whether this binary was built with -tags
// faultinject: it was not.
const faultInjection = false

// withFaultFlags returns define unchanged: no fault-injection flags.
func withFaultFlags(define func(*flag.FlagSet) func(context.Context, *proc, []string) int) func(*flag.FlagSet) func(context.Context, *proc, []string) int {
	return define
}

// faultClock returns src unchanged: a production server's clock is the
// host's.
func faultClock(_ context.Context, src clock.Source, _ *slog.Logger) (clock.Source, func(), error) {
	return src, func() {}, nil
}

// faultPeers returns c unchanged: a production node forwards sequence
// calls straight to their owners.
func faultPeers(_ context.Context, c *http.Client) *http.Client { return c }
