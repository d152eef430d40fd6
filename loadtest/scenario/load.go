package scenario

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
)

// The steady load of a scenario.
const (
	// idClientsPerServer load clients prefer each server slot (standby
	// slots included), and stickyIDClients more use rpc.Client's own
	// failover over every server.
	idClientsPerServer = 2
	stickyIDClients    = 2
	// seqClientsPerDC advance sequences in each datacenter.
	seqClientsPerDC = 2
	// loadPeriod is the wait between one load client's requests: about
	// 20 requests a second each, some 400 in all. A steady trickle, not a
	// benchmark: what matters is that every server is asked all the time.
	loadPeriod = 50 * time.Millisecond
	// idBatch is the IDs one request asks for.
	idBatch = 5
	// seqUIDs is how many uids each datacenter's sequences are spread
	// over: few, so that every uid is advanced many times and its history
	// is a strong linearizability test. seqBatch is the uids of one
	// NextSeqs call, made every seqBatchEvery calls (the others call
	// NextSeq).
	seqUIDs       = 24
	seqBatch      = 3
	seqBatchEvery = 4
	// attemptTimeout bounds each attempt of a request at one server.
	attemptTimeout = time.Second
	// minWindow is the shortest unavailability of a server that the
	// timeline mentions; shorter ones are counted only.
	minWindow = 200 * time.Millisecond
)

// seqUID returns datacenter dc's i-th uid. The datacenters have separate
// etcd clusters and so separate counters; their uids differ so that the
// checker, which sees both, never mixes them. Each uid lies in a group of
// sections of its own (mig serve's defaults: 100,000 uids a section, 128
// sections a group), so that the groups, and the sequence load, spread
// over every node of the datacenter.
func seqUID(dc, i int) uint64 { return uint64(2*i+dc)*groupSpan + 1 + uint64(i) }

// groupSpan is the uids of one group of sections at mig serve's defaults.
const groupSpan = 100_000 * 128

// LoadStats counts the requests of one kind of load. A plain value.
type LoadStats struct {
	// Requests attempted, succeeded (an answer with values) and failed
	// (every server the client tried failed); Canceled were cut off when
	// the load stopped.
	Attempted int64 `json:"attempted"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	Canceled  int64 `json:"canceled"`
	// Values are the IDs or sequences received.
	Values int64 `json:"values"`
	// FailedAttempts counts attempts at one server that failed, including
	// those the client then retried elsewhere with success.
	Attempts       int64 `json:"attempts"`
	FailedAttempts int64 `json:"failed_attempts"`
	// ErrorsByCode counts failed requests by Twirp code (or "network",
	// "deadline_exceeded", "other").
	ErrorsByCode map[string]int64 `json:"errors_by_code"`
	// LongestUnavailable is the longest time, in seconds, one load client
	// went from an answer (or the start of the load) to its next answer
	// (or the end) while its requests failed; Who names the client and
	// When the end of that time, in seconds since the scenario started.
	LongestUnavailable float64 `json:"longest_unavailable_s"`
	Who                string  `json:"who,omitempty"`
	When               float64 `json:"when_s,omitempty"`
}

// ServerStats is what the load saw of one server slot: its first
// attempts from the clients that prefer it. A plain value.
type ServerStats struct {
	Name      string `json:"name"`
	Succeeded int64  `json:"succeeded"`
	Failed    int64  `json:"failed"`
	// LongestUnavailable is the longest time, in seconds, between two of
	// its answers (or from its last answer to the end) while attempts at
	// it failed, counted from its first answer: a standby never started
	// is not unavailable. Windows counts such times of minWindow or more.
	LongestUnavailable float64 `json:"longest_unavailable_s"`
	Windows            int     `json:"windows"`
}

// tally counts one kind of load. Safe for concurrent use.
type tally struct {
	attempted, succeeded, failed, canceled, values, attempts, failedAttempts atomic.Int64
	mu                                                                       struct {
		sync.Mutex
		codes   map[string]int64
		longest time.Duration
		who     string
		when    time.Duration
	}
}

func (t *tally) fail(code string) {
	t.failed.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.codes == nil {
		t.mu.codes = make(map[string]int64)
	}
	t.mu.codes[code]++
}

// outage reports one client's longest unavailability.
func (t *tally) outage(who string, d, at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d > t.mu.longest {
		t.mu.longest, t.mu.who, t.mu.when = d, who, at
	}
}

func (t *tally) stats(tl *timeline) LoadStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := LoadStats{
		Attempted: t.attempted.Load(), Succeeded: t.succeeded.Load(), Failed: t.failed.Load(),
		Canceled: t.canceled.Load(), Values: t.values.Load(),
		Attempts: t.attempts.Load(), FailedAttempts: t.failedAttempts.Load(),
		ErrorsByCode:       map[string]int64{},
		LongestUnavailable: t.mu.longest.Seconds(), Who: t.mu.who,
	}
	for k, v := range t.mu.codes {
		s.ErrorsByCode[k] = v
	}
	if t.mu.longest > 0 {
		s.When = tl.since(t.mu.when)
	}
	return s
}

// tracker follows one server's answers to the clients that prefer it.
// Safe for concurrent use.
type tracker struct {
	name  string
	tl    *timeline
	quiet bool // no timeline lines for its windows
	mu    struct {
		sync.Mutex
		ok, failed   int64
		everOK       bool
		lastOK       time.Duration // monotonic
		failingSince time.Duration // 0: not failing
		longest      time.Duration
		windows      int
		retired      bool // stopped for good by the runner
	}
}

// record notes an attempt that ended at the monotonic time at.
func (t *tracker) record(ok bool, at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.retired {
		return
	}
	if !ok {
		t.mu.failed++
		if t.mu.failingSince == 0 {
			t.mu.failingSince = at
		}
		return
	}
	t.mu.ok++
	if t.mu.failingSince != 0 && t.mu.everOK && at > t.mu.lastOK {
		t.windowLocked(at, false)
	}
	t.mu.failingSince = 0
	t.mu.everOK = true
	t.mu.lastOK = max(t.mu.lastOK, at)
}

// windowLocked closes an unavailability window ending at the monotonic
// time end.
func (t *tracker) windowLocked(end time.Duration, open bool) {
	w := end - t.mu.lastOK
	t.mu.longest = max(t.mu.longest, w)
	if w < minWindow {
		return
	}
	t.mu.windows++
	if t.quiet {
		return
	}
	suffix := ""
	if open {
		suffix = ", still at the end"
	}
	t.tl.noteAt(end, "load", "%s was unavailable for %.3fs (+%.3fs to +%.3fs%s)", t.name, w.Seconds(), t.tl.since(t.mu.lastOK), t.tl.since(end), suffix)
}

// retire ends the tracking of a server the runner stopped for good: an
// open window ends now, and later failures are not unavailability.
func (t *tracker) retire(at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.failingSince != 0 && t.mu.everOK && at > t.mu.lastOK {
		t.windowLocked(at, false)
	}
	t.mu.failingSince = 0
	t.mu.retired = true
}

// answeredSince reports whether the server answered at or after the
// monotonic time since.
func (t *tracker) answeredSince(since time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.everOK && t.mu.lastOK >= since
}

func (t *tracker) stats(end time.Duration) ServerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.failingSince != 0 && t.mu.everOK && end > t.mu.lastOK {
		t.windowLocked(end, true)
		t.mu.failingSince = 0
	}
	return ServerStats{Name: t.name, Succeeded: t.mu.ok, Failed: t.mu.failed, LongestUnavailable: t.mu.longest.Seconds(), Windows: t.mu.windows}
}

// loader runs the steady load of a scenario and records every answer in
// the checker. Safe for concurrent use.
type loader struct {
	clk    clock.Source
	tl     *timeline
	ck     *loadtest.Checker
	slots  []*slot
	pinned []*rpc.Client // one endpoint each, in slot order
	http   *http.Client
	ids    tally
	seqs   tally
	server []*tracker // by slot
	seqDC  []*tracker // by datacenter: answers of its sequence clients
	// seqUID follows each uid (by datacenter, then uid index) through
	// the answers that advanced it: with sequences spread over nodes, a
	// lost node leaves some uids unavailable while the others answer.
	seqUID [][]*tracker
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ended  time.Duration
}

// startLoad starts the load on every slot of d; stop ends it.
func startLoad(ctx context.Context, d *deployment, ck *loadtest.Checker, seq bool, seed uint64) (*loader, error) {
	l := &loader{clk: d.clk, tl: d.tl, ck: ck, slots: d.slots,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	var all []string
	for _, s := range d.slots {
		all = append(all, s.url)
		c, err := rpc.NewClient([]string{s.url}, rpc.WithTimeout(attemptTimeout), rpc.WithHTTPClient(l.http))
		if err != nil {
			return nil, err
		}
		l.pinned = append(l.pinned, c)
		l.server = append(l.server, &tracker{name: s.name, tl: d.tl})
	}
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	client := 0 // each load client's number for the checker
	for k := range len(d.slots) * idClientsPerServer {
		n, who := client, fmt.Sprintf("ids client %d (prefers %s)", client, d.slots[k%len(d.slots)].name)
		l.wg.Go(func() { l.pinnedIDs(ctx, n, who, k%len(d.slots)) })
		client++
	}
	for range stickyIDClients {
		c, err := rpc.NewClient(all, rpc.WithTimeout(attemptTimeout), rpc.WithHTTPClient(l.http))
		if err != nil {
			l.stop()
			return nil, err
		}
		n, who := client, fmt.Sprintf("ids client %d (rpc.Client failover)", client)
		l.wg.Go(func() { l.stickyIDs(ctx, n, who, c) })
		client++
	}
	for i, dc := range d.dcs {
		l.seqDC = append(l.seqDC, &tracker{name: "sequences of " + dc.name, tl: d.tl})
		uids := make([]*tracker, seqUIDs)
		for k := range uids {
			uids[k] = &tracker{name: fmt.Sprintf("uid %d", seqUID(i, k)), tl: d.tl, quiet: true}
		}
		l.seqUID = append(l.seqUID, uids)
		if !seq {
			continue
		}
		var eps []string
		for _, s := range dc.slots {
			eps = append(eps, s.url)
		}
		for k := range seqClientsPerDC {
			c, err := rpc.NewClient(eps, rpc.WithTimeout(attemptTimeout), rpc.WithHTTPClient(l.http))
			if err != nil {
				l.stop()
				return nil, err
			}
			n, who := client, fmt.Sprintf("seq client %d (%s)", client, dc.name)
			rng := rand.New(rand.NewPCG(seed, uint64(client)))
			l.wg.Go(func() { l.seqLoad(ctx, n, who, c, i, rng, k) })
			client++
		}
	}
	return l, nil
}

// stop ends the load and waits for every client.
func (l *loader) stop() {
	l.cancel()
	l.wg.Wait()
	l.ended = l.clk.Mono()
	l.http.CloseIdleConnections()
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

// outage follows one load client's answers, for its longest
// unavailability.
type outage struct {
	lastOK, lastFail time.Duration
	failing          bool
	longest, at      time.Duration
}

func (o *outage) ok(at time.Duration) {
	if o.failing && at-o.lastOK > o.longest {
		o.longest, o.at = at-o.lastOK, at
	}
	o.failing, o.lastOK = false, at
}

func (o *outage) fail(at time.Duration) { o.failing, o.lastFail = true, at }

func (o *outage) end(t *tally, who string) {
	if o.failing && o.lastFail-o.lastOK > o.longest {
		o.longest, o.at = o.lastFail-o.lastOK, o.lastFail
	}
	t.outage(who, o.longest, o.at)
}

// pinnedIDs is a load client that prefers one slot: each request goes
// there first, then, when that fails in a way another server may not (no
// answer, or unavailable), to the next slots in order, as rpc.Client
// fails over. Unlike rpc.Client it comes back to its slot at the next
// request, so that every server, a restarted one included, is asked all
// the time.
func (l *loader) pinnedIDs(ctx context.Context, client int, who string, pref int) {
	o := outage{lastOK: l.clk.Mono()}
	defer o.end(&l.ids, who)
	next := l.clk.Mono()
	for l.pace(ctx, &next) {
		l.ids.attempted.Add(1)
		var err error
		for i := range l.slots {
			k := (pref + i) % len(l.slots)
			call := l.clk.Mono()
			var ids []mig.ID
			var origin rpc.Origin
			ids, origin, err = l.pinned[k].NextIDs(ctx, idBatch)
			ret := l.clk.Mono()
			l.ids.attempts.Add(1)
			if ctx.Err() != nil {
				l.ids.canceled.Add(1)
				return
			}
			if i == 0 {
				l.server[k].record(err == nil, ret)
			}
			if err == nil {
				l.recordIDs(client, call, ret, ids, origin)
				o.ok(ret)
				break
			}
			l.ids.failedAttempts.Add(1)
			if errors.Is(err, rpc.ErrBadAnswer) {
				_ = l.ck.RecordBadAnswer(client, origin.Endpoint, call, ret, err)
			}
			if code(err) != string(twirp.Unavailable) {
				break // another server would say the same
			}
		}
		if err != nil {
			l.ids.fail(code(err))
			o.fail(l.clk.Mono())
		}
	}
}

// stickyIDs is a load client on rpc.Client's own failover over every
// server: it stays with the server that last answered, as applications
// do.
func (l *loader) stickyIDs(ctx context.Context, client int, who string, c *rpc.Client) {
	o := outage{lastOK: l.clk.Mono()}
	defer o.end(&l.ids, who)
	next := l.clk.Mono()
	for l.pace(ctx, &next) {
		l.ids.attempted.Add(1)
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
			if errors.Is(err, rpc.ErrBadAnswer) {
				_ = l.ck.RecordBadAnswer(client, origin.Endpoint, call, ret, err)
			}
			l.ids.fail(code(err))
			o.fail(ret)
			continue
		}
		l.recordIDs(client, call, ret, ids, origin)
		o.ok(ret)
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
func (l *loader) recordIDs(client int, call, ret time.Duration, ids []mig.ID, origin rpc.Origin) {
	l.ids.succeeded.Add(1)
	l.ids.values.Add(int64(len(ids)))
	dc := origin.Datacenter
	if dc == "" {
		dc = "unnamed datacenter"
	}
	_ = l.ck.RecordIDs(loadtest.IDAnswer{Client: client, Server: loadtest.Server{Endpoint: dc, WorkerID: origin.WorkerID}, Call: call, Return: ret, IDs: ids})
}

// seqLoad advances sequences of datacenter dc's uids through rpc.Client
// over that datacenter's servers, which routes each uid to the node that
// serves its group of sections (with seqfacade's single-owner mode, one
// node serves them all and the others answer unavailable).
func (l *loader) seqLoad(ctx context.Context, client int, who string, c *rpc.Client, dc int, rng *rand.Rand, k int) {
	o := outage{lastOK: l.clk.Mono()}
	defer o.end(&l.seqs, who)
	uids := make([]uint64, 0, seqBatch)
	next := l.clk.Mono()
	for n := k; l.pace(ctx, &next); n++ {
		uids = uids[:0]
		size := 1
		if n%seqBatchEvery == 0 {
			size = seqBatch
		}
		picked := rng.Perm(seqUIDs)[:size]
		for _, i := range picked {
			uids = append(uids, seqUID(dc, i))
		}
		l.seqs.attempted.Add(1)
		l.seqs.attempts.Add(1)
		call := l.clk.Mono()
		var seqs []uint64
		var err error
		if size == 1 {
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
		l.seqDC[dc].record(err == nil, ret)
		for _, i := range picked {
			l.seqUID[dc][i].record(err == nil, ret)
		}
		if err != nil {
			l.seqs.failedAttempts.Add(1)
			if errors.Is(err, rpc.ErrBadAnswer) {
				_ = l.ck.RecordBadAnswer(client, l.seqDC[dc].name, call, ret, err)
			}
			l.seqs.fail(code(err))
			o.fail(ret)
			continue
		}
		l.seqs.succeeded.Add(1)
		l.seqs.values.Add(int64(len(seqs)))
		_ = l.ck.RecordSeqs(loadtest.SeqAnswer{Client: client, Endpoint: l.seqDC[dc].name, Call: call, Return: ret, UIDs: uids, Seqs: seqs})
		o.ok(ret)
	}
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
	return "other"
}
