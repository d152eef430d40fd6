package scenario

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/migsvc/mig/seqfacade"
)

// The steady load of a scenario.
const (
	// idClientsPerServer load clients prefer each server slot (standby
	// included), from that slot's datacenter; each datacenter has one
	// more on migclient.Client's own failover.
	idClientsPerServer = 2
	// seqClientsPerDC advance sequences from each datacenter, on
	// migclient.Client over its own servers and the others' (WithRemote).
	seqClientsPerDC = 2
	// loadPeriod is the wait between one load client's requests: about
	// 20 requests a second each, some 500 in all. A steady trickle, not a
	// benchmark: what matters is that every server is asked all the time.
	loadPeriod = 50 * time.Millisecond
	// idBatch is the IDs one request asks for.
	idBatch = 5
	// seqUIDsPerDC is how many uids are homed in each datacenter: few,
	// so that every uid is advanced many times a second and its history
	// is a strong linearizability test. Every client draws from all of
	// them: each uid has one history, written from every datacenter.
	// seqBatch is the uids of one NextSeqs call, made every seqBatchEvery
	// calls (the others call NextSeq).
	seqUIDsPerDC  = 8
	seqUIDs       = datacenters * seqUIDsPerDC
	seqBatch      = 3
	seqBatchEvery = 4
	// attemptTimeout bounds each attempt of a request at one server.
	attemptTimeout = time.Second
	// curlTimeout bounds a request of the client that does not route: the
	// node it asks forwards it (one second at most) to the owner.
	curlTimeout = 1500 * time.Millisecond
	// minWindow is the shortest wait for a server that the timeline
	// mentions and ServerStats.Windows counts.
	minWindow = 200 * time.Millisecond
	// callerPause is the pause of askUntilAnswered's callers after a
	// call that failed.
	callerPause = 10 * time.Millisecond
	// scrapeEvery spaces the reads of every server's extension counter.
	scrapeEvery = time.Second
)

// seqUID returns the i-th uid homed in datacenter dc: each in a group of
// sections of its own (mig serve's defaults: 100,000 uids a section, 128
// sections a group), spread over dc's home groups, so that the groups,
// and the load, spread over every node of the datacenter.
func seqUID(homes seqfacade.Homes, dc, i int) uint64 {
	h := homes[dc]
	g := h.First + i*(h.Last-h.First+1)/seqUIDsPerDC
	return uint64(g)*groupSpan + 1 + uint64(i)
}

// groupOf returns the group of sections of uid.
func groupOf(uid uint64) int { return int(uid / groupSpan) }

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
	keep  bool // keeps every answer's times, for firstAnswerAfter
	mu    struct {
		sync.Mutex
		ok, failed int64
		w          waits
		windows    int  // waits of minWindow or more
		retired    bool // stopped for good by the runner
		answers    [][2]time.Duration
	}
}

// firstAnswerAfter returns when the first request sent at or after t was
// answered, or false if none was (keep only).
func (t *tracker) firstAnswerAfter(at time.Duration) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first time.Duration
	found := false
	for _, a := range t.mu.answers {
		if a[0] >= at && (!found || a[1] < first) {
			first, found = a[1], true
		}
	}
	return first, found
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
	if t.keep {
		t.mu.answers = append(t.mu.answers, [2]time.Duration{call, ret})
	}
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
