//go:build !faultinject

package main

// Production builds: no fault scenarios. scenario.go, built only with
// -tags faultinject, defines the same names with the --scenario flags of
// `mig loadtest` and links their harness (package loadtest/scenario, with
// internal/faultproxy and internal/etcdcluster). Here --scenario exists
// only to say that.

import (
	"context"
	"flag"
	"fmt"
)

// scenarioOptions is --scenario, which this build cannot run.
type scenarioOptions struct{ name string }

// defineScenarioFlags defines --scenario on fs.
func defineScenarioFlags(fs *flag.FlagSet) *scenarioOptions {
	o := &scenarioOptions{}
	fs.StringVar(&o.name, "scenario", "", "run a fault `scenario` against a local deployment: only a fault-injection build\n(go build -tags faultinject ./cmd/mig) has them")
	return o
}

// run refuses: the harness is not in this binary.
func (o *scenarioOptions) run(_ context.Context, p *proc, _ *loadtestOptions) int {
	fmt.Fprintf(p.stderr, "mig loadtest: --scenario %s: fault scenarios need a mig built with -tags faultinject, and this one is a production build.\n"+
		"Build one and run the scenario with it:\n"+
		"  go build -tags faultinject -o mig-fault ./cmd/mig && ./mig-fault loadtest --scenario %s\n", o.name, o.name)
	return exitUsage
}
