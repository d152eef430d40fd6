package scenario

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/seqfacade"
)

// Errors of Run.
var (
	// ErrConfig means a Config is not valid.
	ErrConfig = errors.New("scenario: invalid configuration")
	// ErrUnknown means no scenario has the name asked for.
	ErrUnknown = errors.New("scenario: unknown scenario")
	// ErrSetup means the deployment could not be started.
	ErrSetup = errors.New("scenario: the deployment did not start")
)

// Defaults and bounds of Config.
const (
	// DefaultDuration is how long a fault lasts by default: a server
	// stays dead, partitioned or skewed, a quorum stays lost. The short
	// form the tests run uses ShortDuration.
	DefaultDuration = 8 * time.Second
	ShortDuration   = 2 * time.Second
	MinDuration     = time.Second
	MaxDuration     = 10 * time.Minute
	// BrokenClockRate is the monotonic clock rate of a broken build's
	// servers (Config.BrokenFence): at 0.35, a 2 s lease minus the 0.5 s
	// margin fences 4.3 s after the renewal was sent, up to 2.3 s after
	// etcd may have expired the lease: a margin of -2.8 s in effect. (At
	// 0.4 the window, less etcd's expiry sweep and the replacement's
	// start, was now and then too short for the replacement to serve in
	// it, and the broken build passed.) Renewals, every quarter of the
	// lease on the slowed clock, still come 1.4 s apart, inside the 2 s.
	BrokenClockRate = 0.35
)

// The servers' settings: short worker-ID leases, so that faults play out
// in seconds. The watermark window is mig serve's default (10 s) on
// purpose: with a window shorter than the lease, a partitioned server
// would run out of watermark before its lease could expire, and the
// partition would never test the self-fencing deadline.
//
// The sequence settings are those docs/seq-multidc.md recommends for a
// 40 ms round trip between sites: the default activation delay (1 s),
// margin (200 ms) and confirmation interval (a quarter of the delay),
// and a 400 ms etcd timeout: ten round trips, and short enough that a
// confirmation's right (800 ms) outlasts an interval plus a timeout (650
// ms), as seqfacade's Config.Validate demands.
const (
	epoch             = mig.DefaultEpoch
	leaseTTL          = 2 * time.Second
	leaseMargin       = 500 * time.Millisecond
	etcdTimeout       = 300 * time.Millisecond
	watermarkWindow   = 10 * time.Second
	borrow            = time.Second // the default: min(1s, window/4)
	activationDelay   = seqfacade.DefaultActivationDelay
	seqMargin         = seqfacade.DefaultMargin
	seqTTL            = seqfacade.DefaultTTL
	seqTimeout        = 400 * time.Millisecond
	rebalanceInterval = time.Second // groups go home in rounds of 16 (the default) a second
	seqGroups         = 336         // the groups of the default layout
	recoveryTimeout   = 45 * time.Second
	checkSlack        = time.Second
	readyPoll         = 50 * time.Millisecond
	maxWarmup         = 3 * time.Second
	seqReadyTimeout   = 30 * time.Second
)

// Config configures a scenario run. The zero value of every field but Mig
// means its default. A plain value.
type Config struct {
	// Mig is the path of the mig binary the servers run, built with
	// -tags faultinject (required).
	Mig string
	// Dir receives the etcd data and the servers' logs; default a new
	// temporary directory, removed after a run that passed.
	Dir string
	// Duration is how long the fault lasts (default DefaultDuration).
	Duration time.Duration
	// BrokenFence starts every server with its monotonic clock at
	// BrokenClockRate: a deliberately broken build, whose self-fencing
	// deadline comes after etcd may have given its worker ID away. A run
	// with it should fail; that it does is the proof the checker can.
	BrokenFence bool
	// NoSeq leaves out the sequence load.
	NoSeq bool
	// Progress receives the timeline as it happens (nil: nothing).
	Progress io.Writer
	// Clock times everything (nil: clock.NewReal()).
	Clock clock.Source
	// Seed seeds the sequence load's uid draws (0: a fixed seed).
	Seed uint64
}

// Validate reports the first thing wrong with c, wrapping ErrConfig.
func (c Config) Validate() error {
	switch {
	case c.Mig == "":
		return fmt.Errorf("%w: no mig binary (build one with go build -tags faultinject ./cmd/mig)", ErrConfig)
	case c.Duration != 0 && (c.Duration < MinDuration || c.Duration > MaxDuration):
		return fmt.Errorf("%w: duration %v is not in %v..%v", ErrConfig, c.Duration, MinDuration, MaxDuration)
	}
	return nil
}

// Settings are what a run used, for its report. A plain value.
type Settings struct {
	Epoch              string  `json:"epoch"`
	LeaseTTL           string  `json:"lease_ttl"`
	LeaseMargin        string  `json:"lease_margin"`
	EtcdTimeout        string  `json:"etcd_timeout"`
	WatermarkWindow    string  `json:"watermark_window"`
	SeqActivationDelay string  `json:"seq_activation_delay"`
	SeqLease           string  `json:"seq_lease"`
	ClockRate          float64 `json:"clock_rate"` // 1 but in a broken build
	// NTPCheck is set when every server checks its clock (--ntp-servers)
	// against a fake NTP server on loopback that answers the host's time.
	NTPCheck   bool   `json:"ntp_check,omitempty"`
	EtcdTiming string `json:"etcd_timing"`
	Network    string `json:"network"`
	Duration   string `json:"duration"` // of the fault
	Load       string `json:"load"`
	Tolerance  string `json:"check_tolerance"`
	Ahead      string `json:"check_ahead"`
}

// Result is the outcome of one scenario. A plain value; its JSON form is
// stable.
type Result struct {
	Scenario string   `json:"scenario"`
	About    string   `json:"about"`
	Settings Settings `json:"settings"`
	Elapsed  float64  `json:"elapsed_s"`
	Timeline []Event  `json:"timeline"`
	// DroppedEvents counts events past the timeline's bound.
	DroppedEvents int       `json:"dropped_events,omitempty"`
	IDs           LoadStats `json:"ids"`
	// IDDatacenters is what the ID clients of each datacenter saw.
	IDDatacenters []LoadStats `json:"id_datacenters"`
	// Seqs is what the sequence clients that route saw (migclient), Curl
	// what the one that does not saw (plain JSON, forwarded by the nodes).
	Seqs    LoadStats     `json:"seqs"`
	Curl    LoadStats     `json:"curl"`
	Servers []ServerStats `json:"servers"`
	// SeqUIDs is, for every uid, its longest unavailability as the
	// clients of each datacenter saw it.
	SeqUIDs []UIDStats `json:"seq_uids,omitempty"`
	// Figures are what the scenario measured, with the bound each is
	// compared against.
	Figures []Figure `json:"figures,omitempty"`
	// Latency is that of single-uid NextSeq calls while no fault was
	// under way, for uids homed in the caller's datacenter or another.
	Latency SeqLatency `json:"latency"`
	// SeqExtensions is the max_seq writes of every server process (the
	// sum of mig_seq_extensions_total), and WritesPerMillion that per
	// million sequence values handed out to the load.
	SeqExtensions    float64          `json:"seq_extensions"`
	WritesPerMillion float64          `json:"seq_writes_per_million"`
	Check            loadtest.Verdict `json:"check"`
	// Problems are what kept the scenario from doing what it meant to (a
	// server that never came back, a fault that did not take). They fail
	// the run as a violation does.
	Problems []string `json:"problems,omitempty"`
	// OK is true when the checker found no violation and there were no
	// problems.
	OK bool `json:"ok"`
	// Dir holds the servers' logs when they were kept.
	Dir string `json:"dir,omitempty"`
}

// UIDStats is one uid's longest unavailability, by the datacenter of the
// clients that saw it, in seconds. A plain value.
type UIDStats struct {
	UID     uint64    `json:"uid"`
	Home    string    `json:"home"`
	Longest []float64 `json:"longest_s"`
}

// Figure is one measured figure of a scenario. A plain value.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value_s"`
	// Bound is what the figure is compared against (0: none); Within says
	// whether it was met. A figure out of its bound is reported, not a
	// failure: timing on a shared machine is not a test's to assert.
	Bound  float64 `json:"bound_s,omitempty"`
	Within bool    `json:"within,omitempty"`
	Note   string  `json:"note,omitempty"`
}

// Latency is a distribution of call latencies, in milliseconds. A plain
// value.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// SeqLatency is NextSeq's latency for uids homed in the caller's
// datacenter and in another, from the clients that route and from the
// one that does not (whose calls a node forwards). A plain value.
type SeqLatency struct {
	Home       Latency `json:"home"`
	Remote     Latency `json:"remote"`
	CurlHome   Latency `json:"curl_home"`
	CurlRemote Latency `json:"curl_remote"`
}

// Scenario is one fault played out under load. A plain value.
type Scenario struct {
	Name  string
	About string
	// tolerance and ahead widen the checker's time bounds of IDs for
	// faults that move a server's clock; 0 keeps the defaults.
	tolerance, ahead time.Duration
	// ntp gives the servers an NTP check (Settings.NTPCheck).
	ntp bool
	run func(ctx context.Context, e *env) error
}

// Scenarios returns every scenario, in the order `all` runs them.
func Scenarios() []Scenario { return scenarios() }

// Names returns the names of the scenarios.
func Names() []string {
	var names []string
	for _, s := range scenarios() {
		names = append(names, s.Name)
	}
	return names
}

// Lookup returns the scenario called name.
func Lookup(name string) (Scenario, error) {
	for _, s := range scenarios() {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("%w: %q (the scenarios: %s)", ErrUnknown, name, strings.Join(Names(), ", "))
}

// env is what a scenario's body works with.
type env struct {
	cfg Config
	clk clock.Source
	tl  *timeline
	d   *deployment
	l   *loader
	dur time.Duration // of the fault
	mu  struct {
		sync.Mutex
		figures []Figure
	}
}

// figure records a measured figure, and puts it on the timeline.
func (e *env) figure(f Figure) {
	if f.Bound > 0 {
		f.Within = f.Value <= f.Bound
	}
	msg := fmt.Sprintf("%s: %.3fs", f.Name, f.Value)
	if f.Bound > 0 {
		msg += fmt.Sprintf(" (bound %.3fs: %s)", f.Bound, map[bool]string{true: "within", false: "OVER"}[f.Within])
	}
	if f.Note != "" {
		msg += "; " + f.Note
	}
	e.tl.note("runner", "%s", msg)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.figures = append(e.mu.figures, f)
}

// Run starts a deployment, puts the steady load on it, plays the scenario
// called name, and returns what happened. It returns when everything it
// started has stopped.
//
// Errors: ErrConfig, ErrUnknown, ErrSetup (the deployment did not start);
// ctx's error when it ends first. A violation or a problem during the
// scenario is not an error: Result.OK is false.
func Run(ctx context.Context, name string, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.NewReal()
	}
	dur := cmp.Or(cfg.Duration, DefaultDuration)
	bin, err := filepath.Abs(cfg.Mig)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%w: mig binary: %v", ErrConfig, err)
	}
	cfg.Mig = bin
	layout, err := mig.ParseLayout(epoch)
	if err != nil {
		return nil, err
	}
	dir, tempDir := cfg.Dir, cfg.Dir == ""
	if tempDir {
		if dir, err = os.MkdirTemp("", "mig-scenario-"+sc.Name+"-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}

	check := loadtest.CheckConfig{
		Layout:    layout,
		Tolerance: cmp.Or(sc.tolerance, loadtest.DefaultTolerance),
		// A server that takes over a worker ID starts above its
		// predecessor's watermark: up to a window ahead of the clock.
		Ahead: watermarkWindow + borrow + checkSlack + sc.ahead,
	}
	set := Settings{
		Epoch: epoch, LeaseTTL: leaseTTL.String(), LeaseMargin: leaseMargin.String(),
		EtcdTimeout: etcdTimeout.String(), WatermarkWindow: watermarkWindow.String(),
		SeqActivationDelay: activationDelay.String() + " (the default; confirmations every quarter of it)",
		SeqLease: fmt.Sprintf("--seq-lease-ttl %v, --seq-lease-margin %v, --seq-etcd-timeout %v, --seq-rebalance-interval %v; one sequence cluster (--seq-etcd), the default homes",
			seqTTL, seqMargin, seqTimeout, rebalanceInterval),
		ClockRate:  1,
		EtcdTiming: fmt.Sprintf("sequence cluster: heartbeat %v, election %v; each datacenter's own: heartbeat 25ms, election 250ms", seqHeartbeat, seqElection),
		Network:    fmt.Sprintf("%v each way between datacenters: sequence peers, servers to other datacenters' sequence members, clients and forwarding servers to other datacenters' servers", oneWay),
		Duration:   dur.String(),
		Load: fmt.Sprintf("ID clients: %d preferring each server from its datacenter, failing over in turn, and one a datacenter on migclient.Client's own failover, %d IDs a request; sequence clients: %d a datacenter on migclient.Client (its own servers, WithRemote the others) and one plain JSON client in dc1 that does not route, over %d uids (%d homed in each datacenter, each in a group of sections of its own); each client one request every %v",
			idClientsPerServer, idBatch, seqClientsPerDC, seqUIDs, seqUIDsPerDC, loadPeriod),
		Tolerance: check.Tolerance.String(),
		Ahead:     check.Ahead.String(),
		NTPCheck:  sc.ntp,
	}
	if cfg.NoSeq {
		set.Load = "ID clients only (--scenario-no-seq)"
	}
	if cfg.BrokenFence {
		set.ClockRate = BrokenClockRate
	}

	start := clk.Now()
	check.Start = start
	tl := newTimeline(clk, start.Mono, cfg.Progress)
	res := &Result{Scenario: sc.Name, About: sc.About, Settings: set}
	tl.note("runner", "scenario %s: %s", sc.Name, sc.About)
	if cfg.BrokenFence {
		tl.note("runner", "BROKEN BUILD: every server's monotonic clock runs at %v of real time; this run is expected to FAIL", BrokenClockRate)
	}

	d, err := startDeployment(ctx, cfg, set, clk, tl, dir)
	if err != nil {
		if errors.Is(err, ErrSetup) {
			return nil, fmt.Errorf("%w; etcd data and server logs kept in %s", err, dir)
		}
		if tempDir {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			d.close()
		}
	}()
	ck, err := loadtest.NewChecker(check)
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, clk: clk, tl: tl, d: d, dur: dur}
	if !cfg.NoSeq {
		if err := e.waitSeqServed(ctx); err != nil {
			d.problem("%v", err)
		}
	}
	l, err := startLoad(ctx, d, ck, !cfg.NoSeq, cmp.Or(cfg.Seed, 1))
	if err != nil {
		return nil, err
	}
	e.l = l
	loadStopped := false
	defer func() {
		if !loadStopped {
			l.stop()
		}
	}()
	tl.note("runner", "load started")
	warm := min(dur/2, maxWarmup)
	err = e.sleep(ctx, warm)
	if err == nil {
		tl.note("runner", "fault: begin")
		l.quiet.Store(false)
		err = sc.run(ctx, e)
	}
	if err == nil {
		tl.note("runner", "fault: over; waiting for every server and every uid to answer again")
		err = e.settle(ctx)
	}
	if err == nil {
		l.quiet.Store(true)
		err = e.sleep(ctx, warm)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		d.problem("%v", err)
	}

	if !cfg.NoSeq {
		l.scrapeOnce(ctx)
	}
	l.stop()
	loadStopped = true
	tl.note("runner", "load stopped; checking %d answers", l.ids.succeeded.Load()+l.seqs.succeeded.Load()+l.curl.succeeded.Load())
	res.Check = ck.Check()
	res.IDs, res.Seqs, res.Curl = l.ids.stats(tl), l.seqs.stats(tl), l.curl.stats(tl)
	for _, t := range l.idDC {
		res.IDDatacenters = append(res.IDDatacenters, t.stats(tl))
	}
	for _, t := range l.server {
		res.Servers = append(res.Servers, t.stats(l.ended))
	}
	if !cfg.NoSeq {
		for k, u := range l.uids {
			st := UIDStats{UID: u, Home: dcName(l.home[k])}
			for dc := range d.dcs {
				st.Longest = append(st.Longest, l.seqUID[dc][k].stats(l.ended).LongestUnavailable)
			}
			res.SeqUIDs = append(res.SeqUIDs, st)
		}
		l.lat.Lock()
		res.Latency = SeqLatency{Home: quantiles(l.lat.home), Remote: quantiles(l.lat.remote), CurlHome: quantiles(l.lat.curlHome), CurlRemote: quantiles(l.lat.curlRemote)}
		l.lat.Unlock()
		res.SeqExtensions = l.extensions()
		if v := res.Seqs.Values + res.Curl.Values; v > 0 {
			res.WritesPerMillion = res.SeqExtensions / float64(v) * 1e6
		}
	}
	e.mu.Lock()
	res.Figures = e.mu.figures
	e.mu.Unlock()
	d.close()
	closed = true
	res.Problems = d.problems()
	res.OK = res.Check.OK() && len(res.Problems) == 0
	res.Elapsed = (clk.Mono() - start.Mono).Seconds()
	res.Timeline, res.DroppedEvents = tl.events()
	slices.SortStableFunc(res.Timeline, func(a, b Event) int { return cmp.Compare(a.At, b.At) })
	if res.OK && tempDir {
		_ = os.RemoveAll(dir)
	} else {
		res.Dir = dir
	}
	return res, nil
}

// sleep waits d, or until ctx ends.
func (e *env) sleep(ctx context.Context, d time.Duration) error { return clock.Sleep(ctx, e.clk, d) }

// poll calls ok every readyPoll until it returns true, for at most
// timeout; what names the wait in its error.
func (e *env) poll(ctx context.Context, timeout time.Duration, what string, ok func() bool) error {
	deadline := e.clk.Mono() + timeout
	for !ok() {
		if e.clk.Mono() >= deadline {
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
		if err := e.sleep(ctx, readyPoll); err != nil {
			return err
		}
	}
	return nil
}

// waitAnswering waits until the load got an answer from s after the
// monotonic time since.
func (e *env) waitAnswering(ctx context.Context, s *slot, since time.Duration) error {
	k := slices.Index(e.d.slots, s)
	err := e.poll(ctx, recoveryTimeout, s.name+" answering again", func() bool { return e.l.server[k].answeredSince(since) })
	if err == nil {
		e.tl.note("runner", "%s answers again", s.name)
	}
	return err
}

// waitUIDs waits until every uid was advanced by a request sent after
// since, by the clients of any datacenter, and returns when the last of
// them was first answered.
func (e *env) waitUIDs(ctx context.Context, since time.Duration) (time.Duration, error) {
	if e.cfg.NoSeq {
		return since, nil
	}
	var last time.Duration
	err := e.poll(ctx, recoveryTimeout, "every uid advanced again", func() bool {
		last = since
		for _, t := range e.l.seqAll {
			at, ok := t.firstAnswerAfter(since)
			if !ok {
				return false
			}
			last = max(last, at)
		}
		return true
	})
	if err == nil {
		e.tl.noteAt(last, "load", "every uid advanced again (%d uids)", len(e.l.seqAll))
	}
	return last, err
}

// settle waits until every server meant to run, and every uid, answer
// again after now.
func (e *env) settle(ctx context.Context) error {
	now := e.clk.Mono()
	var errs []error
	for _, s := range e.d.slots {
		s.mu.Lock()
		want := s.mu.want
		s.mu.Unlock()
		if want {
			errs = append(errs, e.waitAnswering(ctx, s, now))
		}
	}
	_, err := e.waitUIDs(ctx, now)
	errs = append(errs, err)
	return errors.Join(errs...)
}

// waitSeqServed waits, before the load starts, until every uid of the
// load is served: the first nodes wait out their activation delay.
func (e *env) waitSeqServed(ctx context.Context) error {
	dc := e.d.dcs[0]
	var eps []string
	for _, s := range dc.servers() {
		eps = append(eps, s.url)
	}
	c, err := migclient.New(eps, migclient.WithTimeout(attemptTimeout))
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	err = e.poll(ctx, seqReadyTimeout, "every uid served", func() bool {
		for h := range e.d.dcs {
			for i := range seqUIDsPerDC {
				if _, err := c.CurSeq(ctx, seqUID(e.d.homes, h, i)); err != nil {
					return false
				}
			}
		}
		return true
	})
	if err == nil {
		e.tl.note("runner", "every uid is served")
	}
	return err
}
