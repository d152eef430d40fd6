//go:build faultinject

package main

// `mig loadtest --scenario` exists only in fault-injection builds
// (go build -tags faultinject ./cmd/mig): its harness (package
// loadtest/scenario, with internal/faultproxy and internal/etcdcluster)
// is linked nowhere else. A production build has scenario_off.go, which
// says so.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/migsvc/mig/loadtest/scenario"
)

// scenarioOptions are the flags of `mig loadtest --scenario`: a fault
// scenario against a local deployment the command starts itself (package
// loadtest/scenario).
type scenarioOptions struct {
	name     string
	duration time.Duration
	mig      string
	dir      string
	broken   bool
	noSeq    bool
}

// defineScenarioFlags defines the --scenario flags on fs.
func defineScenarioFlags(fs *flag.FlagSet) *scenarioOptions {
	o := &scenarioOptions{}
	fs.StringVar(&o.name, "scenario", "", "instead of loading --target, start a local deployment (3 datacenters of 2 servers, 20 ms apart, each on its own\netcd for worker IDs and one member of a sequence cluster spanning them) and run a fault `scenario` under load with the checker on: "+strings.Join(scenario.Names(), ", ")+", or all")
	fs.DurationVar(&o.duration, "scenario-duration", scenario.DefaultDuration, "how long a --scenario's fault lasts (a server dead, partitioned or skewed, a quorum lost)")
	fs.StringVar(&o.mig, "scenario-mig", "", "the mig `binary` a --scenario's servers run, built with -tags faultinject\n(default: this binary)")
	fs.StringVar(&o.dir, "scenario-dir", "", "keep a --scenario's etcd data and server logs in this `directory`\n(default: a temporary one, removed when the scenario passes)")
	fs.BoolVar(&o.broken, "scenario-broken-fence", false, "run the servers with a deliberately broken self-fence (their monotonic clocks at 0.35):\nthe checker must catch it, and the command fail")
	fs.BoolVar(&o.noSeq, "scenario-no-seq", false, "leave the sequence load out of a --scenario")
	return o
}

// run runs the scenario (or all of them), prints each result and returns
// the exit status: 0 when every scenario passed, 1 when one found a
// violation or could not do what it meant to, 2 for bad flags.
func (o *scenarioOptions) run(ctx context.Context, p *proc, lo *loadtestOptions) int {
	// Of loadtest's own flags only --json means something with
	// --scenario; any other is refused rather than ignored.
	var bad []string
	lo.fs.Visit(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Name, "scenario") && f.Name != "json" {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		fmt.Fprintf(p.stderr, "mig loadtest: %s: not used with --scenario, which starts its own deployment and load\n", strings.Join(bad, ", "))
		return exitUsage
	}
	names := []string{o.name}
	if o.name == "all" {
		names = scenario.Names()
	} else if _, err := scenario.Lookup(o.name); err != nil {
		fmt.Fprintf(p.stderr, "mig loadtest: --scenario %s: %v\n", o.name, err)
		return exitUsage
	}
	bin := o.mig
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(p.stderr, "mig loadtest: finding this binary for the scenario's servers: %v; name one with --scenario-mig\n", err)
			return exitFail
		}
		bin = exe
	}
	cfg := scenario.Config{Mig: bin, Duration: o.duration, BrokenFence: o.broken, NoSeq: o.noSeq}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(p.stderr, "mig loadtest: --scenario-duration %v: %v\n", o.duration, err)
		return exitUsage
	}
	if !lo.asJSON {
		cfg.Progress = p.stderr // the timeline as it happens
	}

	// SIGINT and SIGTERM stop the scenario; its deployment is torn down.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	var results []*scenario.Result
	status := exitOK
	for _, name := range names {
		if o.dir != "" {
			cfg.Dir = filepath.Join(o.dir, name)
		}
		res, err := scenario.Run(ctx, name, cfg)
		if err != nil {
			fmt.Fprintf(p.stderr, "mig loadtest: scenario %s: %v\n", name, err)
			if errors.Is(err, context.Canceled) {
				return exitFail
			}
			status = exitFail
			continue
		}
		results = append(results, res)
		if !res.OK {
			status = exitFail
		}
		if !lo.asJSON {
			if err := scenario.WriteResult(p.stdout, res); err != nil {
				fmt.Fprintf(p.stderr, "mig loadtest: writing the result: %v\n", err)
				return exitFail
			}
			fmt.Fprintln(p.stdout)
		}
	}
	if lo.asJSON {
		enc := json.NewEncoder(p.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintf(p.stderr, "mig loadtest: writing the results: %v\n", err)
			return exitFail
		}
	} else if len(names) > 1 {
		writeScenarioSummary(p, results)
	}
	if status != exitOK {
		fmt.Fprintf(p.stderr, "mig loadtest: a scenario failed\n")
	}
	return status
}

// writeScenarioSummary prints one line per scenario: its verdict, the
// requests, the longest unavailability a client saw (IDs, sequences) and
// the longest of any one server.
func writeScenarioSummary(p *proc, results []*scenario.Result) {
	fmt.Fprintf(p.stdout, "%-24s %-4s %9s %9s %8s %8s %-22s %s\n", "scenario", "", "requests", "failed", "ids", "one uid", "longest, one server", "violations")
	for _, r := range results {
		verdict := "PASS"
		if !r.OK {
			verdict = "FAIL"
		}
		worst := scenario.ServerStats{}
		for _, s := range r.Servers {
			if s.LongestUnavailable > worst.LongestUnavailable {
				worst = s
			}
		}
		// A uid's longest wait as the clients of the datacenters left
		// whole saw it: in dc-loss and dc-partition dc3's own clients are
		// cut off by design.
		uid := 0.0
		for _, u := range r.SeqUIDs {
			for i, v := range u.Longest {
				if !(strings.HasPrefix(r.Scenario, "dc-") && i == len(u.Longest)-1) {
					uid = max(uid, v)
				}
			}
		}
		fmt.Fprintf(p.stdout, "%-24s %-4s %9d %9d %7.3fs %7.3fs %-22s %d\n", r.Scenario, verdict,
			r.IDs.Attempted+r.Seqs.Attempted, r.IDs.Failed+r.Seqs.Failed, r.IDs.LongestUnavailable, uid,
			fmt.Sprintf("%.3fs %s", worst.LongestUnavailable, worst.Name), r.Check.Violations)
	}
	fmt.Fprintf(p.stdout, "(the longest waits, from the first request that failed, or the send of a late one, to the next answer:\n"+
		"ids: of an ID client; one uid: for a uid to be advanced; one server: of the ID clients that prefer a server\n"+
		"for its own answer, while they failed over to others)\n")
}
