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
	"github.com/migsvc/mig/rpc/migclient"
)

// The steady load of a scenario.
const (
	// idClientsPerServer load clients prefer each server slot (standby
	// slots included), and stickyIDClients more use migclient.Client's own
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
	// minWindow is the shortest wait for a server that the timeline
	// mentions and ServerStats.Windows counts.
	minWindow = 200 * time.Millisecond
)

// seqUID returns datacenter dc's i-th uid. The datacenters have separate
// etcd clusters, each serving the groups homed in it (--seq-homes): the
// uids of datacenter dc lie in its home groups. Each uid lies in a group
// of sections of its own (mig serve's defaults: 100,000 uids a section,
// 128 sections a group), so that the groups, and the sequence load,
// spread over every node of the datacenter.
func seqUID(dc, i int) uint64 {
	return uint64(dc*(seqGroups/datacenters)+i)*groupSpan + 1 + uint64(i)
}

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
	// LongestUnavailable is the longest wait of one load client, in
	// seconds: from the send of the first request that failed after its
	// last answer (or of a request answered late) to its next answer (or
	// the end); Who names the client and When the end of that wait, in
	// seconds since the scenario started. Without failures it is the
	// slowest request.
	LongestUnavailable float64 `json:"longest_unavailable_s"`
	Who                string  `json:"who,omitempty"`
	When               float64 `json:"when_s,omitempty"`
}

// ServerStats is what the load saw of one server slot (its first
// attempts from the clients that prefer it), or of one uid. A plain
// value.
type ServerStats struct {
	Name      string `json:"name"`
	Succeeded int64  `json:"succeeded"`
	Failed    int64  `json:"failed"`
	// LongestUnavailable is the longest wait for it, in seconds, as for
	// LoadStats, counted from its first answer: a standby never started is
	// not unavailable. Windows counts waits of minWindow or more.
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

// waits measures unavailability as a caller that retries sees it: from
// the send of the first request that failed after the last answer to the
// next answer; an answer that came late counts from its own send. So a
// request that hangs for seconds and then succeeds is a wait of seconds,
// as are seconds of quick failures. Before its first answer nothing
// counts (a standby never started is not unavailable). A plain value,
// not safe for concurrent use.
type waits struct {
	everOK  bool
	lastOK  time.Duration // arrival of the latest answer, monotonic
	since   time.Duration // send of the earliest request that failed since; 0: none
	longest time.Duration
	end     time.Duration // when the longest ended
}

// fail notes a request sent at call that failed.
func (w *waits) fail(call time.Duration) {
	if !w.everOK || call < w.lastOK {
		return // an answer that arrived after it was sent ended its wait
	}
	if w.since == 0 || call < w.since {
		w.since = call
	}
}

// ok notes a request sent at call and answered at ret, and returns the
// wait it ended and when that began.
func (w *waits) ok(call, ret time.Duration) (wait, from time.Duration) {
	from = call
	if w.since != 0 && w.since < from {
		from = w.since
	}
	if w.everOK {
		wait = ret - from
		if wait > w.longest {
			w.longest, w.end = wait, ret
		}
	}
	w.since, w.everOK, w.lastOK = 0, true, max(w.lastOK, ret)
	return wait, from
}

// close ends a wait still open at end, and returns it.
func (w *waits) close(end time.Duration) (wait, from time.Duration) {
	if w.since == 0 || end < w.since {
		return 0, 0
	}
	wait, from = end-w.since, w.since
	if wait > w.longest {
		w.longest, w.end = wait, end
	}
	w.since = 0
	return wait, from
}

// tracker follows the answers of one server (to the clients that prefer
// it) or one uid. Safe for concurrent use.
type tracker struct {
	name  string
	tl    *timeline
	quiet bool // no timeline lines for its windows
	mu    struct {
		sync.Mutex
		ok, failed int64
		w          waits
		windows    int  // waits of minWindow or more
		retired    bool // stopped for good by the runner
	}
}

// record notes a request sent at call that ended at ret.
func (t *tracker) record(ok bool, call, ret time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.retired {
		return
	}
	if !ok {
		t.mu.failed++
		t.mu.w.fail(call)
		return
	}
	t.mu.ok++
	t.windowLocked(t.mu.w.ok(call, ret))
}

// windowLocked counts a wait, and puts it on the timeline when it is
// long enough to matter.
func (t *tracker) windowLocked(wait, from time.Duration) {
	t.windowEndLocked(wait, from, false)
}

func (t *tracker) windowEndLocked(wait, from time.Duration, open bool) {
	if wait < minWindow {
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
	t.tl.noteAt(from+wait, "load", "%s was unavailable for %.3fs (+%.3fs to +%.3fs%s)", t.name, wait.Seconds(), t.tl.since(from), t.tl.since(from+wait), suffix)
}

// retire ends the tracking of a server the runner stopped for good: an
// open wait ends now, and later failures are not unavailability.
func (t *tracker) retire(at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	wait, from := t.mu.w.close(at)
	t.windowLocked(wait, from)
	t.mu.retired = true
}

// answeredSince reports whether an answer arrived at or after the
// monotonic time since.
func (t *tracker) answeredSince(since time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.w.everOK && t.mu.w.lastOK >= since
}

func (t *tracker) stats(end time.Duration) ServerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.mu.retired {
		wait, from := t.mu.w.close(end)
		t.windowEndLocked(wait, from, true)
	}
	return ServerStats{Name: t.name, Succeeded: t.mu.ok, Failed: t.mu.failed, LongestUnavailable: t.mu.w.longest.Seconds(), Windows: t.mu.windows}
}

// loader runs the steady load of a scenario and records every answer in
// the checker. Safe for concurrent use.
type loader struct {
	clk    clock.Source
	tl     *timeline
	ck     *loadtest.Checker
	slots  []*slot
	pinned []*migclient.Client // one endpoint each, in slot order
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
		c, err := migclient.New([]string{s.url}, migclient.WithTimeout(attemptTimeout), migclient.WithHTTPClient(l.http))
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
		c, err := migclient.New(all, migclient.WithTimeout(attemptTimeout), migclient.WithHTTPClient(l.http))
		if err != nil {
			l.stop()
			return nil, err
		}
		n, who := client, fmt.Sprintf("ids client %d (migclient.Client failover)", client)
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
			c, err := migclient.New(eps, migclient.WithTimeout(attemptTimeout), migclient.WithHTTPClient(l.http))
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

// outage follows one load client's answers, for its longest wait.
type outage struct{ waits }

func newOutage(start time.Duration) *outage {
	return &outage{waits{everOK: true, lastOK: start}}
}

func (o *outage) report(t *tally, who string, end time.Duration) {
	o.close(end)
	t.outage(who, o.longest, o.end)
}

// pinnedIDs is a load client that prefers one slot: each request goes
// there first, then, when that fails in a way another server may not (no
// answer, or unavailable), to the next slots in order, as migclient.Client
// fails over. Unlike migclient.Client it comes back to its slot at the next
// request, so that every server, a restarted one included, is asked all
// the time.
func (l *loader) pinnedIDs(ctx context.Context, client int, who string, pref int) {
	o := newOutage(l.clk.Mono())
	defer func() { o.report(&l.ids, who, l.clk.Mono()) }()
	next := l.clk.Mono()
	for l.pace(ctx, &next) {
		l.ids.attempted.Add(1)
		sent := l.clk.Mono()
		var err error
		for i := range l.slots {
			k := (pref + i) % len(l.slots)
			call := l.clk.Mono()
			var ids []mig.ID
			var origin migclient.Origin
			ids, origin, err = l.pinned[k].NextIDs(ctx, idBatch)
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
				l.recordIDs(client, call, ret, ids, origin)
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
			o.fail(sent)
		}
	}
}

// stickyIDs is a load client on migclient.Client's own failover over every
// server: it stays with the server that last answered, as applications
// do.
func (l *loader) stickyIDs(ctx context.Context, client int, who string, c *migclient.Client) {
	o := newOutage(l.clk.Mono())
	defer func() { o.report(&l.ids, who, l.clk.Mono()) }()
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
			if errors.Is(err, migclient.ErrBadAnswer) {
				_ = l.ck.RecordBadAnswer(client, origin.Endpoint, call, ret, err)
			}
			l.ids.fail(code(err))
			o.fail(call)
			continue
		}
		l.recordIDs(client, call, ret, ids, origin)
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
func (l *loader) recordIDs(client int, call, ret time.Duration, ids []mig.ID, origin migclient.Origin) {
	l.ids.succeeded.Add(1)
	l.ids.values.Add(int64(len(ids)))
	dc := origin.Datacenter
	if dc == "" {
		dc = "unnamed datacenter"
	}
	_ = l.ck.RecordIDs(loadtest.IDAnswer{Client: client, Server: loadtest.Server{Endpoint: dc, WorkerID: origin.WorkerID}, Call: call, Return: ret, IDs: ids})
}

// seqLoad advances sequences of datacenter dc's uids through migclient.Client
// over that datacenter's servers, which routes each uid to the node that
// serves its group of sections (with seqfacade's single-owner mode, one
// node serves them all and the others answer unavailable).
func (l *loader) seqLoad(ctx context.Context, client int, who string, c *migclient.Client, dc int, rng *rand.Rand, k int) {
	o := newOutage(l.clk.Mono())
	defer func() { o.report(&l.seqs, who, l.clk.Mono()) }()
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
		l.seqDC[dc].record(err == nil, call, ret)
		for _, i := range picked {
			l.seqUID[dc][i].record(err == nil, call, ret)
		}
		if err != nil {
			l.seqs.failedAttempts.Add(1)
			if errors.Is(err, migclient.ErrBadAnswer) {
				_ = l.ck.RecordBadAnswer(client, l.seqDC[dc].name, call, ret, err)
			}
			l.seqs.fail(code(err))
			o.fail(call)
			continue
		}
		l.seqs.succeeded.Add(1)
		l.seqs.values.Add(int64(len(seqs)))
		_ = l.ck.RecordSeqs(loadtest.SeqAnswer{Client: client, Endpoint: l.seqDC[dc].name, Call: call, Return: ret, UIDs: uids, Seqs: seqs})
		o.ok(call, ret)
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
