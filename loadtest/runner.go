package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc/migclient"
)

// Run puts the load cfg describes on t, then, with cfg.RedisAddr, the same
// load on Redis, and returns the report. It returns when the load is done
// and every request in flight has been answered or has failed: it leaves
// no goroutine behind.
//
// When ctx ends the load stops early: requests in flight are abandoned
// (counted as canceled, not as errors) and the report covers what was
// done; the Redis phase does not start.
//
// Errors: a *FieldError wrapping ErrConfig for an invalid cfg; ErrNoClient
// when t lacks the mode's client; ErrRedis (with the MIG report) when
// cfg.RedisAddr cannot be reached. Failed requests and checker violations
// are not errors of Run: they are in the report, and Report.OK is false
// when the checker found a violation.
func Run(ctx context.Context, cfg Config, t Targets) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	seed := c.Seed
	if seed == 0 {
		seed = rand.Uint64() | 1
	}
	sessions, err := newSessions(c, t, false, seed)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	if rep.MIG, err = runPhase(ctx, c, "mig", seed, sessions); err != nil {
		return nil, err
	}
	if c.RedisAddr != "" && ctx.Err() == nil {
		// Fail fast on a wrong address, rather than report a phase of
		// nothing but errors.
		conn, err := dialRESP(ctx, c.Clock, c.RedisAddr, c.Timeout)
		if err != nil {
			rep.finish()
			return rep, fmt.Errorf("%w: %s: %v", ErrRedis, c.RedisAddr, err)
		}
		conn.close()
		sessions, err := newSessions(c, t, true, seed)
		if err != nil {
			return nil, err
		}
		r, err := runPhase(ctx, c, "redis", seed, sessions)
		if err != nil {
			return nil, err
		}
		rep.Redis = &r
	}
	rep.finish()
	return rep, nil
}

// phase is one run of the load against one system.
type phase struct {
	cfg    Config
	system string
	clk    clock.Source
	start  clock.Reading
	end    time.Duration // monotonic; 0: no duration bound
	open   bool
	period float64 // open loop: nanoseconds between requests
	rec    *recorder
	ck     *Checker

	issued   atomic.Int64 // requests taken (closed loop) or scheduled (open loop)
	stop     chan struct{}
	stopOnce sync.Once
	stopWhy  atomic.Pointer[string]
}

// halt stops the load: no request is started after it.
func (p *phase) halt(why string) {
	p.stopOnce.Do(func() {
		if why != "" {
			p.stopWhy.Store(&why)
		}
		close(p.stop)
	})
}

func (p *phase) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// runPhase runs the load of c against the sessions newSession makes and
// returns its result.
func runPhase(ctx context.Context, c Config, system string, seed uint64, newSession func(k int) session) (Result, error) {
	check := c.Check
	if system == "redis" {
		check.NoTimestamps = true
	}
	usage0, rusageOK := cpuUsage()
	p := &phase{
		cfg:    c,
		system: system,
		clk:    c.Clock,
		open:   c.Rate > 0,
		rec:    newRecorder(c.Clients, runtime.GOMAXPROCS(0)),
		stop:   make(chan struct{}),
	}
	if p.open {
		p.period = 1e9 / c.Rate
	}
	p.start = p.clk.Now()
	check.Start = p.start
	ck, err := NewChecker(check)
	if err != nil {
		return Result{}, prefixField("Check", err)
	}
	p.ck = ck
	if c.Duration > 0 {
		p.end = p.start.Mono + c.Duration
	}

	prog := &progress{w: c.Progress, terminal: c.Terminal, label: fmt.Sprintf("%s %s %s-loop", system, c.Mode, c.loop()), unit: c.Mode.unit()}
	total, lag := newHist(), newHist()
	var series []Interval
	var sum tally

	var workers, helpers sync.WaitGroup
	done := make(chan struct{}) // closed when every worker has returned
	outages := make([]time.Duration, c.Clients)
	for k := range c.Clients {
		workers.Go(func() { outages[k] = p.worker(ctx, k, newSession(k), seed) })
	}
	helpers.Go(func() { // ends the load at its duration, or when ctx ends
		var timeUp <-chan struct{}
		if p.end > 0 {
			timeUp = p.clk.After(c.Duration)
		}
		select {
		case <-timeUp:
			p.halt("")
		case <-ctx.Done():
			p.halt("canceled")
		case <-done:
		}
	})
	helpers.Go(func() { // the latency series and the progress line
		interval, prev := newHist(), newHist() // prev: the last interval's
		var prevTally tally
		last := p.start.Mono
		collect := func(now time.Duration, final bool) {
			t := p.rec.drain(interval, lag)
			total.Merge(interval)
			sum.add(t)
			switch {
			case final && len(series) > 0 && now-last < c.Interval/4:
				// A short tail (the requests in flight at the end) joins
				// the last interval: alone, its rates would be noise.
				prev.Merge(interval)
				prevTally.add(t)
				iv := &series[len(series)-1]
				*iv = newInterval(now-p.start.Mono, time.Duration(iv.Seconds*1e9)+now-last, prev, prevTally)
			case final && t.ok+t.errs == 0 && len(series) > 0:
				// Nothing happened since the last interval.
			default:
				series = append(series, newInterval(now-p.start.Mono, now-last, interval, t))
				prev.Reset()
				prev.Merge(interval)
				prevTally = t
			}
			last = now
			interval.Reset()
			prog.write(series, sum, total, final)
		}
		next := p.start.Mono + c.Interval
		for {
			select {
			case <-p.clk.After(next - p.clk.Mono()):
				now := p.clk.Mono()
				collect(now, false)
				for next <= now {
					next += c.Interval
				}
			case <-done:
				collect(p.clk.Mono(), true)
				return
			}
		}
	})
	workers.Wait()
	end := p.clk.Now()
	close(done)
	helpers.Wait()

	usage1, _ := cpuUsage()
	r := Result{
		System:       system,
		Mode:         c.Mode.String(),
		Loop:         c.loop(),
		Clients:      c.Clients,
		Rate:         c.Rate,
		Batch:        c.Batch,
		Seed:         seed,
		Elapsed:      (end.Mono - p.start.Mono).Seconds(),
		OK:           sum.ok,
		Errors:       sum.errs,
		Canceled:     sum.canceled,
		ErrorsByCode: sum.codes,
		Answers:      sum.answers,
		Failures:     sortedFailures(sum.failures),
		Values:       sum.values,
		Latency:      summarize(total),
		SendLag:      summarize(lag),
		Series:       series,
	}
	if r.ErrorsByCode == nil {
		r.ErrorsByCode = map[string]int64{}
	}
	if c.Mode == ModeSeq {
		r.Dist = c.Dist.String()
		r.UIDs, r.UIDStride = c.Dist.UIDs, c.Dist.Stride()
	}
	if why := p.stopWhy.Load(); why != nil {
		r.StoppedEarly = *why
	}
	r.Requests = r.OK + r.Errors
	if r.Elapsed > 0 {
		r.RequestsPerSec = float64(r.Requests) / r.Elapsed
		r.ValuesPerSec = float64(r.Values) / r.Elapsed
	}
	for _, o := range outages {
		r.LongestUnavailable = max(r.LongestUnavailable, o.Seconds())
	}
	if rusageOK {
		r.CPU = newCPU(usage0, usage1, r.Requests+r.Canceled)
	}
	r.Check = ck.Check()
	return r, nil
}

// worker is load client k: it takes requests until the load stops, and
// returns the longest time it went without a successful answer while
// requests failed. seed seeds its backoff's jitter.
func (p *phase) worker(ctx context.Context, k int, s session, seed uint64) (longest time.Duration) {
	defer s.close()
	lastOK := p.start.Mono
	var lastFail time.Duration
	failing := false
	defer func() {
		if failing {
			longest = max(longest, lastFail-lastOK)
		}
	}()
	// Connections that fail are counted as they fail: the client moves
	// on to another endpoint, and the call's error, if any, does not
	// say.
	ctx = dialTrace(ctx, func(endpoint, cause string) { p.rec.failed(k, endpoint, cause) })
	back := backoff{first: p.cfg.Backoff, most: p.cfg.MaxBackoff, rng: rand.New(rand.NewPCG(seed, ^uint64(k)))}
	var answered endpointName
	for {
		due, ok := p.next(ctx)
		if !ok {
			return longest
		}
		// HAZARD: the checker's real-time order rests on call being read
		// before the request leaves and ret after its answer arrived. Read
		// either on the other side of send and the checker may flag a
		// correct service, or miss a rollback.
		call := p.clk.Mono()
		n, err := s.send(ctx)
		ret := p.clk.Mono()
		from, lag := call, time.Duration(-1)
		if p.open {
			// HAZARD: measuring from the send time instead would hide
			// the wait of every request queued behind a stall.
			from, lag = due, max(call-due, 0)
		}
		if err != nil {
			if ctx.Err() != nil {
				p.rec.canceled(k)
				return longest
			}
			if errors.Is(err, migclient.ErrBadAnswer) {
				// The checker never sees the values the client refused,
				// so the refusal itself is the violation.
				_ = p.ck.RecordBadAnswer(k, s.endpoint(), call, ret, err)
			}
			p.rec.record(k, ret-from, lag, 0, "", errorCode(err))
			attemptFailures(err, true, func(endpoint, cause string) { p.rec.failed(k, endpoint, cause) })
			failing, lastFail = true, ret
			if !p.open && !p.pause(ctx, back.next()) {
				return longest
			}
			continue
		}
		back.reset()
		if err := s.record(p.ck, k, call, ret); errors.Is(err, ErrHistoryFull) {
			p.halt(fmt.Sprintf("the checker holds %d records, its limit (Check.MaxRecords)", p.ck.cfg.MaxRecords))
		}
		p.rec.record(k, ret-from, lag, n, answered.of(s.endpoint()), "")
		if failing {
			longest = max(longest, ret-lastOK)
			failing = false
		}
		lastOK = ret
	}
}

// pause waits d, and reports false when the load stopped meanwhile.
func (p *phase) pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-p.clk.After(d):
		return true
	case <-p.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// backoff is how long a client waits after each failure in a row:
// first, doubled each time up to most, each wait drawn between half and
// all of that. Not safe for concurrent use: each client has its own.
type backoff struct {
	first, most time.Duration
	rng         *rand.Rand
	cur         time.Duration // the last wait's bound; 0 after a success
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.first
	} else {
		b.cur = min(2*b.cur, b.most)
	}
	half := b.cur / 2
	return half + time.Duration(b.rng.Int64N(int64(b.cur-half)+1))
}

func (b *backoff) reset() { b.cur = 0 }

// endpointName turns the base URL of the endpoint that answered into the
// host:port the report counts it by, remembering the last one: a client
// mostly stays on one endpoint.
type endpointName struct{ url, name string }

func (e *endpointName) of(url string) string {
	if url == "" || url == e.url {
		return e.name
	}
	e.url, e.name = url, endpointOf(errors.New(url))
	return e.name
}

// next waits for the next request a client may send and returns when it
// was due (open loop), or false when the load is over.
func (p *phase) next(ctx context.Context) (due time.Duration, ok bool) {
	if p.stopped() || ctx.Err() != nil {
		return 0, false
	}
	i := p.issued.Add(1) - 1
	if p.cfg.Count > 0 && i >= p.cfg.Count {
		return 0, false
	}
	if !p.open {
		return 0, true
	}
	due = p.start.Mono + time.Duration(float64(i)*p.period)
	if p.end > 0 && due >= p.end {
		return 0, false
	}
	if wait := due - p.clk.Mono(); wait > 0 {
		select {
		case <-p.clk.After(wait):
		case <-p.stop:
			return 0, false
		case <-ctx.Done():
			return 0, false
		}
	}
	return due, true
}

// newInterval summarizes one interval of the series, which ended at `at`
// (since the start) and lasted d.
func newInterval(at, d time.Duration, h *hdrhistogram.Histogram, t tally) Interval {
	iv := Interval{At: at.Seconds(), Seconds: d.Seconds(), Requests: t.ok + t.errs, Errors: t.errs, Values: t.values}
	l := summarize(h)
	iv.P50, iv.P99, iv.Max = l.P50, l.P99, l.Max
	return iv
}

// unit names the values of a mode, for reports.
func (m Mode) unit() string {
	if m == ModeSeq {
		return "seqs"
	}
	return "IDs"
}

// progress writes the progress line.
type progress struct {
	w        io.Writer
	terminal bool
	label    string
	unit     string
	width    int // of the last line, to blank it out on a terminal
}

// write writes the progress line after an interval: the last interval's
// rates and errors (labelled with its length), then the run's errors and
// p99 so far; at the end, the whole run's average rates instead.
func (p *progress) write(series []Interval, sum tally, total *hdrhistogram.Histogram, final bool) {
	if p.w == nil || len(series) == 0 {
		return
	}
	iv := series[len(series)-1]
	rate := func(n int64, secs float64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(n) / secs
	}
	var now string
	if final {
		now = fmt.Sprintf("done, average: %9.0f req/s %10.0f %s/s",
			rate(sum.ok+sum.errs, iv.At), rate(sum.values, iv.At), p.unit)
	} else {
		now = fmt.Sprintf("last %.1fs: %9.0f req/s %10.0f %s/s %7d errors",
			iv.Seconds, rate(iv.Requests, iv.Seconds), rate(iv.Values, iv.Seconds), p.unit, iv.Errors)
	}
	whole := "so far"
	if final {
		whole = "in all"
	}
	line := fmt.Sprintf("%s %6.1fs  %s  |  %s: %d errors, p99 %s",
		p.label, iv.At, now, whole, sum.errs, fmtMicros(float64(total.ValueAtQuantile(99))))
	if !p.terminal {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprintf(p.w, "\r%s%*s%s", line, pad, "", end)
}
