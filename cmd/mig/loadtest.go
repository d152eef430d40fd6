package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/rpc/migclient"
)

var loadtestCommand = command{
	name:     "loadtest",
	synopsis: "--target URL[,URL...] [--mode ids|seq] [--duration D | --count N] [--clients N] [--rate R] [flags]",
	summary:  "put load on MIG servers, measure latency, and check every answer",
	about: `
Loadtest sends requests to the MIG servers of --target (host:port or base
URLs, comma-separated; the client fails over between them as applications
do) and reports throughput, errors by Twirp code, latency percentiles from
an HDR histogram, and the CPU it spent itself per request.

--mode ids asks for --batch IDs a request. Each client starts on its own
endpoint of --target (client k on the k-th, in turn), so that every server
gets its share, and fails over to the others.

--mode seq advances the sequences of --batch distinct uids a request
(NextSeq, or NextSeqs when --batch is above 1), drawn from --uids uids by
--dist: uniform; hot (--hot-calls of the calls go to --hot-uids of the
uids); or zipf (--zipf-s, --zipf-v). The uids are spread evenly over the
servers' uid space, 1..--uid-limit-1: with the defaults, 1,000,000 uids
4294 apart (4294, 8588, ..., 4294000000), so that they fall into every
group of sections, and so on every node (uids 1..1,000,000 would all be
in group 0, on one node). --uid-limit is the servers' --uid-limit;
--uid-limit N+1 with --uids N gives the uids 1..N.

With --rate 0 (the default) it runs a closed loop: --clients requests in
flight, each client sending its next as soon as its last is answered. With
--rate R it runs an open loop of R requests a second, on --clients
connections, and measures each request's latency from when it was due: a
stall delays the requests behind it, and their wait is counted.

A client of the closed loop whose requests fail waits before its next
one: --backoff, doubled after each failure in a row up to --max-backoff
(each wait drawn between half and all of that). The open loop keeps its
schedule.

Every answer is checked: IDs unique across all clients and servers, each
server's IDs strictly increasing in real-time order, their timestamps
within the time of their request (--clock-tolerance, --max-ahead), and each
uid's sequences linearizable (never repeated, never backwards). Violations
are printed with the values, clients, servers and times involved.

It calls through migclient, the Go client applications use, on a
transport of its own (loadtest.Transport) that costs it about a third
less CPU a call than the client's default, net/http's; --transport
net/http uses that one instead, to compare.

The report counts failed attempts by endpoint and cause ("127.0.0.1:7070:
connection refused, 812 attempts"), those the client recovered from on
another endpoint included, and, in ids mode, the answers of each endpoint.

--redis ADDR runs the same load against Redis INCR/INCRBY afterwards (keys
mig-loadtest:ids and mig-loadtest:seq:UID) and prints both with their
ratio. --json prints the report as JSON instead of text, with the seed
and every 64-bit number (uids) as strings, as MIG's own JSON has them;
--plot FILE writes a self-contained HTML page with latency and throughput
over time.

A progress line goes to standard error every --interval: the last
interval's requests and values a second and its errors ("last 1.0s:"),
then the errors and p99 of the whole run so far ("so far:"). SIGINT or
SIGTERM stops the load early; the report covers what was done.

The verdict is PASS when the checker found nothing wrong and some request
succeeded, FAIL otherwise (a run whose every request failed proves
nothing), with the reason.

Exit status: 0 for PASS, 1 for FAIL or when the run failed, 2 for a bad
flag or flag value.`,
	flags: loadtestFlags,
}

// loadtestFlagOfField maps the fields of loadtest.Config (as
// loadtest.FieldError names them) to the flags that set them.
var loadtestFlagOfField = map[string]string{
	"Mode":            "mode",
	"Clients":         "clients",
	"Rate":            "rate",
	"Duration":        "duration",
	"Count":           "count",
	"Batch":           "batch",
	"Timeout":         "timeout",
	"Interval":        "interval",
	"Backoff":         "backoff",
	"MaxBackoff":      "max-backoff",
	"Dist.Kind":       "dist",
	"Dist.UIDs":       "uids",
	"Dist.Space":      "uid-limit",
	"Dist.HotCalls":   "hot-calls",
	"Dist.HotUIDs":    "hot-uids",
	"Dist.ZipfS":      "zipf-s",
	"Dist.ZipfV":      "zipf-v",
	"Check.Tolerance": "clock-tolerance",
	"Check.Ahead":     "max-ahead",
}

// loadtestOptions are the flags of `mig loadtest`.
type loadtestOptions struct {
	fs                   *flag.FlagSet
	targets, redis, plot string
	mode                 loadtestModeFlag
	dist                 loadtestDistFlag
	epoch                *epochFlag
	duration, timeout    time.Duration
	interval             time.Duration
	backoff, maxBackoff  time.Duration
	tolerance, ahead     time.Duration
	count                int64
	clients, batch       int
	uids, uidLimit, seed uint64
	rate                 float64
	hotCalls, hotUIDs    float64
	zipfS, zipfV         float64
	asJSON, useJSON      bool
	transport            string
}

func loadtestFlags(fs *flag.FlagSet) func(context.Context, *proc, []string) int {
	o := &loadtestOptions{fs: fs, epoch: newEpochFlag()}
	fs.StringVar(&o.targets, "target", "", "comma-separated MIG `endpoints`, host:port or base URLs (required)")
	fs.Var(&o.mode, "mode", "what to ask for: `ids` (NextIDs) or seq (NextSeq, NextSeqs)")
	fs.DurationVar(&o.duration, "duration", loadtest.DefaultDuration, "how long to run; with --count and no --duration, until --count requests")
	fs.Int64Var(&o.count, "count", 0, "stop after this many requests (0: no limit)")
	fs.IntVar(&o.clients, "clients", loadtest.DefaultClients, "requests in flight at most: concurrent clients (and connections)")
	fs.Float64Var(&o.rate, "rate", 0, "open loop at this many requests a second; 0 runs a closed loop")
	fs.IntVar(&o.batch, "batch", loadtest.DefaultBatch, "IDs (ids) or distinct uids (seq) a request")
	fs.Var(&o.dist, "dist", "seq mode's uid `distribution`: uniform, hot or zipf")
	fs.Uint64Var(&o.uids, "uids", loadtest.DefaultUIDs, "seq mode: how many uids, spread evenly over 1..--uid-limit-1 (see above)")
	fs.Uint64Var(&o.uidLimit, "uid-limit", loadtest.DefaultUIDSpace, "seq mode: the servers' --uid-limit, which the uids spread below")
	fs.Float64Var(&o.hotCalls, "hot-calls", loadtest.DefaultHotCalls, "--dist hot: the share of calls to the hot uids, in (0, 1]")
	fs.Float64Var(&o.hotUIDs, "hot-uids", loadtest.DefaultHotUIDs, "--dist hot: the share of uids that are hot, in (0, 1]")
	fs.Float64Var(&o.zipfS, "zipf-s", loadtest.DefaultZipfS, "--dist zipf: the exponent s, above 1 (larger is more skewed)")
	fs.Float64Var(&o.zipfV, "zipf-v", loadtest.DefaultZipfV, "--dist zipf: the offset v, at least 1")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the uid draws (0: random; the report says which)")
	fs.DurationVar(&o.timeout, "timeout", migclient.DefaultTimeout, "timeout of each attempt of a request (and of each Redis command)")
	fs.DurationVar(&o.backoff, "backoff", loadtest.DefaultBackoff, "closed loop: how long a client waits after a failed request, doubled after each failure in a row")
	fs.DurationVar(&o.maxBackoff, "max-backoff", loadtest.DefaultMaxBackoff, "closed loop: the most a client waits after failed requests")
	fs.BoolVar(&o.useJSON, "use-json", false, "speak JSON to the servers instead of protobuf")
	fs.StringVar(&o.transport, "transport", "pooled", "the client's HTTP `transport`: pooled (loadtest's own, on the caller's goroutine) or net/http")
	fs.BoolVar(&o.asJSON, "json", false, "print the report as JSON (a stable format) instead of text")
	fs.StringVar(&o.redis, "redis", "", "`host:port` of a Redis to run the same load against with INCR, for comparison")
	fs.StringVar(&o.plot, "plot", "", "write latency and throughput over time to this HTML `file`")
	fs.DurationVar(&o.interval, "interval", loadtest.DefaultInterval, "period of the progress line and of the plot's points")
	fs.Var(o.epoch, "epoch", "the `RFC3339` epoch of the servers' IDs, to check their timestamps")
	fs.DurationVar(&o.tolerance, "clock-tolerance", loadtest.DefaultTolerance, "how far the servers' clocks may be from this host's")
	fs.DurationVar(&o.ahead, "max-ahead", loadtest.DefaultAhead, "how far ahead of the clock a server may issue IDs (its --borrow)")
	sc := defineScenarioFlags(fs) // scenario.go
	return func(ctx context.Context, p *proc, args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(p.stderr, "mig loadtest: unexpected argument %q: loadtest takes flags only\nRun 'mig loadtest --help' for usage.\n", args[0])
			return exitUsage
		}
		if sc.name != "" {
			return sc.run(ctx, p, o)
		}
		cfg, err := o.config()
		if err != nil {
			fmt.Fprintf(p.stderr, "mig loadtest: %v\nRun 'mig loadtest --help' for usage.\n", err)
			return exitUsage
		}
		return o.run(ctx, p, cfg)
	}
}

// config checks the flags and returns the load's configuration. Every
// error names the flag at fault and its value.
func (o *loadtestOptions) config() (loadtest.Config, error) {
	set := map[string]bool{}
	o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// Zero means "the default" in loadtest.Config; here every flag has its
	// default written out, so a zero is a mistake.
	for _, name := range []string{"clients", "batch", "uids", "uid-limit", "timeout", "interval", "backoff", "max-backoff", "hot-calls", "hot-uids", "zipf-s", "zipf-v"} {
		if v := o.fs.Lookup(name).Value.String(); v == "0" || v == "0s" {
			return loadtest.Config{}, fmt.Errorf("--%s %s: must be positive", name, v)
		}
	}
	for _, name := range []string{"clock-tolerance", "max-ahead"} {
		if strings.HasPrefix(o.fs.Lookup(name).Value.String(), "-") {
			return loadtest.Config{}, fmt.Errorf("--%s %s: must not be negative", name, o.fs.Lookup(name).Value)
		}
	}
	if strings.TrimSpace(o.targets) == "" {
		return loadtest.Config{}, errors.New("--target is required: the MIG endpoints to load")
	}
	if o.redis != "" {
		if _, _, err := net.SplitHostPort(o.redis); err != nil {
			return loadtest.Config{}, fmt.Errorf("--redis %s: not host:port: %v", o.redis, err)
		}
	}
	duration := o.duration
	if o.count > 0 && !set["duration"] {
		duration = 0 // by count alone
	}
	if duration == 0 && o.count == 0 {
		return loadtest.Config{}, errors.New("--duration 0s: give a duration, a --count, or both")
	}
	cfg := loadtest.Config{
		Mode:     o.mode.m,
		Clients:  o.clients,
		Rate:     o.rate,
		Duration: duration,
		Count:    o.count,
		Batch:    o.batch,
		Dist: loadtest.Dist{
			Kind: o.dist.k, UIDs: o.uids, Space: o.uidLimit,
			HotCalls: o.hotCalls, HotUIDs: o.hotUIDs,
			ZipfS: o.zipfS, ZipfV: o.zipfV,
		},
		Seed:        o.seed,
		Timeout:     o.timeout,
		Interval:    o.interval,
		Backoff:     o.backoff,
		MaxBackoff:  o.maxBackoff,
		RedisAddr:   o.redis,
		Check:       loadtest.CheckConfig{Layout: o.epoch.layout, Tolerance: o.tolerance, Ahead: o.ahead},
		RedisPrefix: loadtest.DefaultRedisPrefix,
	}
	if err := cfg.Validate(); err != nil {
		var fe *loadtest.FieldError
		if errors.As(err, &fe) {
			if name, ok := loadtestFlagOfField[fe.Field]; ok {
				return cfg, fmt.Errorf("--%s %s: %s", name, o.fs.Lookup(name).Value, fe.Reason)
			}
		}
		return cfg, err
	}
	return cfg, nil
}

// run runs the load and prints the report; it returns the exit status.
func (o *loadtestOptions) run(ctx context.Context, p *proc, cfg loadtest.Config) int {
	fail := func(err error) int {
		fmt.Fprintf(p.stderr, "mig loadtest: %v\n", err)
		return exitFail
	}
	endpoints := strings.Split(o.targets, ",")
	opts := []migclient.Option{migclient.WithTimeout(o.timeout)}
	if o.useJSON {
		opts = append(opts, migclient.WithJSON())
	}
	switch o.transport {
	case "pooled":
		opts = append(opts, migclient.WithHTTPClient(&http.Client{Transport: loadtest.NewTransport(clock.NewReal())}))
	case "net/http":
	default:
		fmt.Fprintf(p.stderr, "mig loadtest: --transport %s: not pooled or net/http\n", o.transport)
		return exitUsage
	}
	c, err := migclient.New(endpoints, opts...)
	if err != nil {
		fmt.Fprintf(p.stderr, "mig loadtest: --target %s: %v\n", o.targets, err)
		return exitUsage
	}
	defer c.CloseIdleConnections()
	var targets loadtest.Targets
	switch cfg.Mode {
	case loadtest.ModeIDs:
		targets.IDs = c
		each, err := clientsEach(endpoints, opts)
		if err != nil {
			return fail(err) // New accepted the same endpoints and options just above
		}
		for _, ec := range each {
			defer ec.CloseIdleConnections()
			targets.IDsEach = append(targets.IDsEach, ec)
		}
	case loadtest.ModeSeq:
		targets.Seq = c // one routing table for every load client
	}
	// Create the plot's file first: a bad path should not cost a run.
	var plot *os.File
	if o.plot != "" {
		f, err := os.Create(o.plot)
		if err != nil {
			return fail(fmt.Errorf("--plot: %w", err))
		}
		defer f.Close()
		plot = f
	}

	// SIGINT and SIGTERM stop the load; the report still comes. After the
	// first, signals get their default action back, so a second one ends
	// the process at once.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	cfg.Progress, cfg.Terminal = p.stderr, loadtest.IsTerminal(p.stderr)
	rep, runErr := loadtest.Run(ctx, cfg, targets)
	if rep == nil {
		return fail(runErr)
	}
	if err := o.printReport(p.stdout, rep); err != nil {
		return fail(fmt.Errorf("writing the report: %w", err))
	}
	if plot != nil {
		if err := loadtest.WritePlot(plot, rep); err != nil {
			return fail(fmt.Errorf("--plot: %w", err))
		}
		if err := plot.Close(); err != nil {
			return fail(fmt.Errorf("--plot: %w", err))
		}
	}
	switch {
	case runErr != nil:
		return fail(runErr)
	case !rep.OK:
		fmt.Fprintf(p.stderr, "mig loadtest: FAIL: %s\n", rep.Reason)
		return exitFail
	}
	return exitOK
}

// clientsEach returns a client for each endpoint, which starts there and
// fails over to the others in turn (after the first, as a datacenter of
// their own: migclient tries it only when the first fails, and skips the
// first for a second after it failed). A client stays on the endpoint
// that last answered, so one client shared by every load client would
// put the whole load on one server.
func clientsEach(endpoints []string, opts []migclient.Option) ([]*migclient.Client, error) {
	if len(endpoints) < 2 {
		return nil, nil
	}
	out := make([]*migclient.Client, len(endpoints))
	for i, ep := range endpoints {
		rest := append(slices.Clone(endpoints[i+1:]), endpoints[:i]...)
		c, err := migclient.New([]string{ep}, append(slices.Clone(opts), migclient.WithRemote("rest of --target", rest...))...)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

func (o *loadtestOptions) printReport(w io.Writer, rep *loadtest.Report) error {
	if !o.asJSON {
		return loadtest.WriteSummary(w, rep)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// loadtestModeFlag is --mode: ids or seq.
type loadtestModeFlag struct{ m loadtest.Mode }

func (f *loadtestModeFlag) String() string {
	if f == nil {
		return loadtest.ModeIDs.String()
	}
	return f.m.String()
}

func (f *loadtestModeFlag) Set(s string) error {
	m, err := loadtest.ParseMode(s)
	if err != nil {
		return errors.New("not ids or seq")
	}
	f.m = m
	return nil
}

// loadtestDistFlag is --dist: uniform, hot or zipf.
type loadtestDistFlag struct{ k loadtest.DistKind }

func (f *loadtestDistFlag) String() string {
	if f == nil {
		return loadtest.DistUniform.String()
	}
	return f.k.String()
}

func (f *loadtestDistFlag) Set(s string) error {
	k, err := loadtest.ParseDistKind(s)
	if err != nil {
		return errors.New("not uniform, hot or zipf")
	}
	f.k = k
	return nil
}
