package scenario

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migclient"
)

// loader runs the steady load of a scenario and records every answer in
// the checker. Safe for concurrent use.
type loader struct {
	clk    clock.Source
	tl     *timeline
	ck     *loadtest.Checker
	d      *deployment
	slots  []*slot
	dcHTTP []*http.Client // by datacenter: reaches the others through the links
	ids    tally
	seqs   tally
	curl   tally
	idDC   []*tally   // by datacenter: its ID clients
	server []*tracker // by slot
	uids   []uint64   // every uid of the load, by home datacenter
	home   []int      // each uid's home datacenter
	// seqUID follows each uid as the clients of each datacenter saw it
	// (by datacenter, then uid index); seqAll as every client saw it.
	seqUID [][]*tracker
	seqAll []*tracker
	// seqCli is each datacenter's first sequence load client (nil
	// without sequences), which the runner's probes share; clients
	// counts the checker's client numbers given out.
	seqCli  []*migclient.Client
	clients atomic.Int32
	// window follows each uid as every client saw it since the runner
	// last opened a window (openWindow): a scenario's own measure.
	window atomic.Pointer[[]*tracker]
	// quiet is set while no fault is under way: the latency histograms
	// take only those calls.
	quiet atomic.Bool
	lat   struct {
		sync.Mutex
		home, remote, curlHome, curlRemote *hdrhistogram.Histogram
	}
	ext struct {
		sync.Mutex
		last map[int]float64 // mig_seq_extensions_total by pid, as last read
	}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ended  time.Duration
}

// startLoad starts the load on every slot of d; stop ends it.
func startLoad(ctx context.Context, d *deployment, ck *loadtest.Checker, seq bool, seed uint64) (*loader, error) {
	l := &loader{clk: d.clk, tl: d.tl, ck: ck, d: d, slots: d.slots}
	l.lat.home, l.lat.remote, l.lat.curlHome, l.lat.curlRemote = newHist(), newHist(), newHist(), newHist()
	l.ext.last = map[int]float64{}
	l.quiet.Store(true)
	for _, dc := range d.dcs {
		l.dcHTTP = append(l.dcHTTP, d.net.client(dc.index))
		l.idDC = append(l.idDC, &tally{})
	}
	for _, s := range d.slots {
		l.server = append(l.server, &tracker{name: s.name, tl: d.tl})
	}
	for h := range d.dcs {
		for i := range seqUIDsPerDC {
			l.uids = append(l.uids, seqUID(d.homes, h, i))
			l.home = append(l.home, h)
		}
	}
	for range d.dcs {
		var row []*tracker
		for _, u := range l.uids {
			row = append(row, &tracker{name: fmt.Sprintf("uid %d", u), tl: d.tl, quiet: true, keep: true})
		}
		l.seqUID = append(l.seqUID, row)
	}
	for k, u := range l.uids {
		l.seqAll = append(l.seqAll, &tracker{name: fmt.Sprintf("uid %d (home %s)", u, dcName(l.home[k])), tl: d.tl, quiet: true, keep: true})
	}
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	client := 0 // each load client's number for the checker
	for k, s := range d.slots {
		for range idClientsPerServer {
			n, who := client, fmt.Sprintf("ids client %d (%s, prefers %s)", client, s.dc.name, s.name)
			dc := s.dc.index
			pinned := make([]*migclient.Client, len(d.slots))
			for j, t := range d.slots {
				c, err := migclient.New([]string{t.url}, migclient.WithTimeout(attemptTimeout), migclient.WithHTTPClient(l.dcHTTP[dc]))
				if err != nil {
					l.stop()
					return nil, err
				}
				pinned[j] = c
			}
			l.wg.Go(func() { l.pinnedIDs(ctx, n, who, dc, pinned, k) })
			client++
		}
	}
	for _, dc := range d.dcs {
		c, err := l.dcClient(dc, attemptTimeout)
		if err != nil {
			l.stop()
			return nil, err
		}
		n, who := client, fmt.Sprintf("ids client %d (%s, migclient.Client failover)", client, dc.name)
		l.wg.Go(func() { l.stickyIDs(ctx, n, who, dc.index, c) })
		client++
	}
	if seq {
		l.seqCli = make([]*migclient.Client, len(d.dcs))
		for _, dc := range d.dcs {
			for k := range seqClientsPerDC {
				// The Go client's default attempt timeout: above the
				// server's wait for a group that activates, so that a
				// new owner answers before the client gives up on it.
				c, err := l.dcClient(dc, migclient.DefaultTimeout)
				if err != nil {
					l.stop()
					return nil, err
				}
				if k == 0 {
					l.seqCli[dc.index] = c
				}
				n, who := client, fmt.Sprintf("seq client %d (%s)", client, dc.name)
				rng := rand.New(rand.NewPCG(seed, uint64(client)))
				l.wg.Go(func() { l.seqLoad(ctx, n, who, c, dc.index, rng, k) })
				client++
			}
		}
		n, who := client, "seq client "+strconv.Itoa(client)+" (dc1, plain JSON, no routing: as curl)"
		rng := rand.New(rand.NewPCG(seed, uint64(client)))
		l.wg.Go(func() { l.curlLoad(ctx, n, who, d.dcs[0], rng) })
		client++
		l.wg.Go(func() { l.scrape(ctx) })
	}
	l.clients.Store(int32(client))
	return l, nil
}

// openWindow starts following every uid afresh, with the answers of
// every client, and returns the trackers (read them with stats).
// Answers of requests sent before the window opened do not count.
func (l *loader) openWindow() []*tracker {
	w := make([]*tracker, len(l.uids))
	now := l.clk.Mono()
	for k, u := range l.uids {
		w[k] = &tracker{name: fmt.Sprintf("uid %d (home %s)", u, dcName(l.home[k])), tl: l.tl, quiet: true}
		// A wait counts from the window's start: as if answered then.
		w[k].mu.w = waits{everOK: true, lastOK: now}
	}
	l.window.Store(&w)
	return w
}

// dcClient returns a migclient.Client of datacenter dc: its own servers,
// then the others' (WithRemote), the others through the links; each
// attempt bounded by timeout.
func (l *loader) dcClient(dc *datacenter, timeout time.Duration) (*migclient.Client, error) {
	urls := func(dc *datacenter) []string {
		var u []string
		for _, s := range dc.slots {
			u = append(u, s.url)
		}
		return u
	}
	opts := []migclient.Option{migclient.WithTimeout(timeout), migclient.WithHTTPClient(l.dcHTTP[dc.index])}
	for j := 1; j < datacenters; j++ {
		o := l.d.dcs[(dc.index+j)%datacenters]
		opts = append(opts, migclient.WithRemote(o.name, urls(o)...))
	}
	return migclient.New(urls(dc), opts...)
}

// stop ends the load and waits for every client.
func (l *loader) stop() {
	l.cancel()
	l.wg.Wait()
	l.ended = l.clk.Mono()
	for _, c := range l.dcHTTP {
		c.CloseIdleConnections()
	}
}

// pace waits for a client's next request: every loadPeriod, without
// catching up on requests a slow answer delayed. It returns false when
// the load stops.
func (l *loader) pace(ctx context.Context, next *time.Duration) bool {
	now := l.clk.Mono()
	if *next < now-loadPeriod {
		*next = now
	}
	*next += loadPeriod
	select {
	case <-l.clk.After(*next - now):
		return true
	case <-ctx.Done():
		return false
	}
}

// outage follows one load client's answers, for its longest wait.
type outage struct{ waits }

func newOutage(start time.Duration) *outage {
	return &outage{waits{everOK: true, lastOK: start}}
}

func (o *outage) report(t *tally, who string, end time.Duration) {
	o.close(end)
	t.outage(who, o.longest, o.end)
}

// pinnedIDs is a load client of datacenter dc that prefers one slot:
// each request goes there first, then, when that fails in a way another
// server may not (no answer, or unavailable), to the next slots in order
// (its own datacenter's first), as migclient.Client fails over. Unlike
// migclient.Client it comes back to its slot at the next request, so
// that every server, a restarted one included, is asked all the time.
func (l *loader) pinnedIDs(ctx context.Context, client int, who string, dc int, pinned []*migclient.Client, pref int) {
	o, report := l.idOutage(dc, who)
	defer report()
	next := l.clk.Mono()
	for l.pace(ctx, &next) {
		l.idAttempted(dc)
		sent := l.clk.Mono()
		var err error
		for i := range l.slots {
			k := (pref + i) % len(l.slots)
			call := l.clk.Mono()
			var ids []mig.ID
			var origin migclient.Origin
			ids, origin, err = pinned[k].NextIDs(ctx, idBatch)
			ret := l.clk.Mono()
			l.ids.attempts.Add(1)
			if ctx.Err() != nil {
				l.ids.canceled.Add(1)
				return
			}
			if i == 0 {
				l.server[k].record(err == nil, call, ret)
			}
			if err == nil {
				l.recordIDs(client, dc, call, ret, ids, origin)
				o.ok(sent, ret)
				break
			}
			l.ids.failedAttempts.Add(1)
			if errors.Is(err, migclient.ErrBadAnswer) {
				_ = l.ck.RecordBadAnswer(client, origin.Endpoint, call, ret, err)
			}
			if code(err) != string(twirp.Unavailable) {
				break // another server would say the same
			}
		}
		if err != nil {
			l.ids.fail(code(err))
			l.idDC[dc].fail(code(err))
			o.fail(sent)
		}
	}
}

// idOutage starts following the waits of an ID load client of datacenter
// dc; report, when the client stops, adds them to the ID figures and the
// datacenter's under who.
func (l *loader) idOutage(dc int, who string) (o *outage, report func()) {
	o = newOutage(l.clk.Mono())
	return o, func() {
		o.report(&l.ids, who, l.clk.Mono())
		l.idDC[dc].outage(who, o.longest, o.end)
	}
}

// idAttempted counts a request of an ID load client of datacenter dc.
func (l *loader) idAttempted(dc int) {
	l.ids.attempted.Add(1)
	l.idDC[dc].attempted.Add(1)
}

// stickyIDs is a load client of datacenter dc on migclient.Client's own
// failover: it stays with the server that last answered, as applications
// do, and goes to another datacenter only when its own fails.
func (l *loader) stickyIDs(ctx context.Context, client int, who string, dc int, c *migclient.Client) {
	o, report := l.idOutage(dc, who)
	defer report()
	next := l.clk.Mono()
	for l.pace(ctx, &next) {
		l.idAttempted(dc)
		l.ids.attempts.Add(1)
		call := l.clk.Mono()
		ids, origin, err := c.NextIDs(ctx, idBatch)
		ret := l.clk.Mono()
		if ctx.Err() != nil {
			l.ids.canceled.Add(1)
			return
		}
		if err != nil {
			l.ids.failedAttempts.Add(1)
			if errors.Is(err, migclient.ErrBadAnswer) {
				_ = l.ck.RecordBadAnswer(client, origin.Endpoint, call, ret, err)
			}
			l.ids.fail(code(err))
			l.idDC[dc].fail(code(err))
			o.fail(call)
			continue
		}
		l.recordIDs(client, dc, call, ret, ids, origin)
		o.ok(call, ret)
	}
}

// recordIDs gives an answer to the checker.
//
// The checker keys a server's order by (Endpoint, WorkerID). The load
// gives it the datacenter instead of the endpoint, so that the order is
// checked per worker ID across every process that held it: a restarted
// or replacement server that takes over a worker ID must continue above
// every ID its predecessor handed out, in real time. That is the promise
// (the IDs of one worker strictly increase), and the check a late
// self-fence fails: the old holder still answering after the new one
// started.
func (l *loader) recordIDs(client, dc int, call, ret time.Duration, ids []mig.ID, origin migclient.Origin) {
	l.ids.succeeded.Add(1)
	l.idDC[dc].succeeded.Add(1)
	l.ids.values.Add(int64(len(ids)))
	name := origin.Datacenter
	if name == "" {
		name = "unnamed datacenter"
	}
	_ = l.ck.RecordIDs(loadtest.IDAnswer{Client: client, Server: loadtest.Server{Endpoint: name, WorkerID: origin.WorkerID}, Call: call, Return: ret, IDs: ids})
}

// pick draws the uids of one sequence call: one, or seqBatch every
// seqBatchEvery calls.
func (l *loader) pick(rng *rand.Rand, n int) []int {
	size := 1
	if n%seqBatchEvery == 0 {
		size = seqBatch
	}
	return rng.Perm(len(l.uids))[:size]
}

// recordSeq notes a sequence call of a client of datacenter dc for the
// uids picked, in the trackers (and the checker, if it succeeded).
//
// The trackers of uids follow single-uid calls only: a batch waits for
// its slowest share (a uid homed in a datacenter just lost holds up the
// others), so its wait is the client's, not each uid's.
func (l *loader) recordSeq(client, dc int, endpoint string, picked []int, call, ret time.Duration, seqs []uint64, err error) {
	win := l.window.Load()
	for _, i := range picked {
		if len(picked) > 1 {
			break
		}
		l.seqUID[dc][i].record(err == nil, call, ret)
		l.seqAll[i].record(err == nil, call, ret)
		if win != nil {
			(*win)[i].record(err == nil, call, ret)
		}
	}
	if err != nil {
		return
	}
	uids := make([]uint64, len(picked))
	for k, i := range picked {
		uids[k] = l.uids[i]
	}
	_ = l.ck.RecordSeqs(loadtest.SeqAnswer{Client: client, Endpoint: endpoint, Call: call, Return: ret, UIDs: uids, Seqs: seqs})
}

// latency records a single-uid call's latency while no fault is under way.
func (l *loader) latency(curl, home bool, d time.Duration) {
	if !l.quiet.Load() {
		return
	}
	l.lat.Lock()
	defer l.lat.Unlock()
	h := l.lat.home
	switch {
	case curl && home:
		h = l.lat.curlHome
	case curl:
		h = l.lat.curlRemote
	case !home:
		h = l.lat.remote
	}
	_ = h.RecordValue(d.Microseconds())
}

// seqLoad advances sequences of every datacenter's uids through
// migclient.Client from datacenter dc: it routes each uid to the node
// that serves it, in whichever datacenter.
func (l *loader) seqLoad(ctx context.Context, client int, who string, c *migclient.Client, dc int, rng *rand.Rand, k int) {
	o := newOutage(l.clk.Mono())
	defer func() { o.report(&l.seqs, who, l.clk.Mono()) }()
	next := l.clk.Mono()
	for n := k; l.pace(ctx, &next); n++ {
		picked := l.pick(rng, n)
		uids := make([]uint64, len(picked))
		for j, i := range picked {
			uids[j] = l.uids[i]
		}
		l.seqs.attempted.Add(1)
		l.seqs.attempts.Add(1)
		call := l.clk.Mono()
		var seqs []uint64
		var err error
		if len(uids) == 1 {
			var v uint64
			v, err = c.NextSeq(ctx, uids[0])
			seqs = []uint64{v}
		} else {
			seqs, err = c.NextSeqs(ctx, uids)
		}
		ret := l.clk.Mono()
		if ctx.Err() != nil {
			l.seqs.canceled.Add(1)
			return
		}
		l.recordSeq(client, dc, "seq clients of "+dcName(dc), picked, call, ret, seqs, err)
		if err != nil {
			l.seqs.failedAttempts.Add(1)
			if errors.Is(err, migclient.ErrBadAnswer) {
				_ = l.ck.RecordBadAnswer(client, "seq clients of "+dcName(dc), call, ret, err)
			}
			l.seqs.fail(code(err))
			o.fail(call)
			continue
		}
		if len(uids) == 1 {
			l.latency(false, l.home[picked[0]] == dc, ret-call)
		}
		l.seqs.succeeded.Add(1)
		l.seqs.values.Add(int64(len(seqs)))
		o.ok(call, ret)
	}
}

// curlLoad advances sequences as a client that does not route: plain
// JSON POSTs of NextSeq with no routing version, as curl sends, to the
// servers of datacenter dc, the next one when one fails. The node asked
// forwards the call to the uid's owner.
func (l *loader) curlLoad(ctx context.Context, client int, who string, dc *datacenter, rng *rand.Rand) {
	o := newOutage(l.clk.Mono())
	defer func() { o.report(&l.curl, who, l.clk.Mono()) }()
	servers := dc.servers()
	next, at := l.clk.Mono(), 0
	for l.pace(ctx, &next) {
		i := rng.IntN(len(l.uids))
		l.curl.attempted.Add(1)
		call := l.clk.Mono()
		var seq uint64
		var err error
		var by string
		for try := range servers {
			s := servers[(at+try)%len(servers)]
			l.curl.attempts.Add(1)
			seq, err = l.curlNext(ctx, dc.index, s, l.uids[i])
			if err == nil {
				at, by = (at+try)%len(servers), s.name
				break
			}
			l.curl.failedAttempts.Add(1)
			if ctx.Err() != nil {
				l.curl.canceled.Add(1)
				return
			}
		}
		ret := l.clk.Mono()
		l.recordSeq(client, dc.index, "curl via "+by, []int{i}, call, ret, []uint64{seq}, err)
		if err != nil {
			l.curl.fail(code(err))
			o.fail(call)
			continue
		}
		l.latency(true, l.home[i] == dc.index, ret-call)
		l.curl.succeeded.Add(1)
		l.curl.values.Add(1)
		o.ok(call, ret)
	}
}

// askUntilAnswered is a caller that keeps asking: from now on, for each
// uid of uids (indices), it calls NextSeq through datacenter dc's
// sequence load client again and again until the uid is answered, and
// returns when the last was (zero when uids is empty). It measures a
// failover as a caller waiting for one uid sees it, which the steady
// load cannot: its clients draw uids at random, and a uid they happen
// not to draw for a while looks unavailable until they do. Its answers
// go to the checker like the load's.
func (l *loader) askUntilAnswered(ctx context.Context, dc int, uids []int, timeout time.Duration) (time.Duration, error) {
	c := l.seqCli[dc]
	if c == nil {
		return 0, fmt.Errorf("no sequence load client in %s", dcName(dc))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	endpoint := "callers asking from " + dcName(dc)
	first := make([]time.Duration, len(uids))
	var wg sync.WaitGroup
	for j, i := range uids {
		client := int(l.clients.Add(1)) - 1
		wg.Go(func() {
			for {
				call := l.clk.Mono()
				v, err := c.NextSeq(ctx, l.uids[i])
				ret := l.clk.Mono()
				if err == nil {
					_ = l.ck.RecordSeqs(loadtest.SeqAnswer{Client: client, Endpoint: endpoint, Call: call, Return: ret, UIDs: []uint64{l.uids[i]}, Seqs: []uint64{v}})
					first[j] = ret
					return
				}
				if errors.Is(err, migclient.ErrBadAnswer) {
					_ = l.ck.RecordBadAnswer(client, endpoint, call, ret, err)
				}
				// The client waited between its own rounds; a call that
				// failed at once is not repeated in a spin.
				if clock.Sleep(ctx, l.clk, callerPause) != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	var last time.Duration
	for j, at := range first {
		if at == 0 {
			return 0, fmt.Errorf("uid %d not answered within %v of asking from %s", l.uids[uids[j]], timeout, dcName(dc))
		}
		last = max(last, at)
	}
	return last, nil
}

// curlNext is one plain JSON NextSeq to s.
func (l *loader) curlNext(ctx context.Context, dc int, s *slot, uid uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, curlTimeout)
	defer cancel()
	body := fmt.Sprintf(`{"uid":"%d"}`, uid)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/twirp/mig.v1.SeqService/NextSeq", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.dcHTTP[dc].Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code string `json:"code"`
			Msg  string `json:"msg"`
		}
		if json.Unmarshal(b, &e) == nil && e.Code != "" {
			return 0, twirp.NewError(twirp.ErrorCode(e.Code), e.Msg)
		}
		return 0, fmt.Errorf("%s: HTTP %d: %s", s.name, resp.StatusCode, shorten(string(b)))
	}
	var r struct {
		Seq     string          `json:"seq"`
		Routing json.RawMessage `json:"routing"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", migclient.ErrBadAnswer, s.name, err)
	}
	if len(r.Routing) > 0 && !bytes.Equal(r.Routing, []byte("null")) {
		return 0, fmt.Errorf("%w: %s sent a routing table to a client that does not route", migclient.ErrBadAnswer, s.name)
	}
	v, err := strconv.ParseUint(r.Seq, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%w: %s: sequence %q", migclient.ErrBadAnswer, s.name, r.Seq)
	}
	return v, nil
}

// scrape reads every running server's mig_seq_extensions_total every
// scrapeEvery, keeping the last value of each process: a killed server's
// writes still count.
func (l *loader) scrape(ctx context.Context) {
	for clock.Sleep(ctx, l.clk, scrapeEvery) == nil {
		l.scrapeOnce(ctx)
	}
}

func (l *loader) scrapeOnce(ctx context.Context) {
	for _, s := range l.slots {
		p := s.current()
		if p == nil || closed(p.exited) {
			continue
		}
		v, err := metric(ctx, l.dcHTTP[s.dc.index], s, "mig_seq_extensions_total")
		if err != nil {
			continue
		}
		l.ext.Lock()
		l.ext.last[p.pid] = v
		l.ext.Unlock()
	}
}

// extensions returns the max_seq writes of every server process seen.
func (l *loader) extensions() float64 {
	l.ext.Lock()
	defer l.ext.Unlock()
	var sum float64
	for _, v := range l.ext.last {
		sum += v
	}
	return sum
}

// metric reads the value of an unlabelled metric from s's /metrics.
func metric(ctx context.Context, c *http.Client, s *slot, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no metric %s", s.name, name)
}

// code classifies a failed request by its Twirp code.
func code(err error) string {
	var twerr twirp.Error
	switch {
	case errors.As(err, &twerr):
		return string(twerr.Code())
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return "network"
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

// quantiles returns h's p50, p90, p99 and max in milliseconds, and its
// count.
func quantiles(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{Count: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())}
}

// lastAnswerSentAfter returns, of the sequence requests of datacenter
// dc's clients sent after since and answered, the latest send, and how
// many there were.
func (l *loader) lastAnswerSentAfter(dc int, since time.Duration) (time.Duration, int) {
	var last time.Duration
	n := 0
	for _, t := range l.seqUID[dc] {
		t.mu.Lock()
		for _, a := range t.mu.answers {
			if a[0] >= since {
				n++
				last = max(last, a[0])
			}
		}
		t.mu.Unlock()
	}
	return last, n
}
