package loadtest

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
)

// Defaults of CheckConfig.
const (
	// DefaultTolerance is how far an ID's time may be from the load
	// generator's clock: the servers' clocks are kept within
	// clock.DefaultNTPMaxOffset (500 ms) of NTP, and so, presumably, is
	// the host the load comes from.
	DefaultTolerance = time.Second
	// DefaultAhead is how far ahead of the clock a server may issue: the
	// generator's default borrow bound.
	DefaultAhead = mig.DefaultBorrow
	// DefaultMaxRecords bounds the memory of a Checker: about 20 M records
	// (an answer, a run of consecutive IDs, or one uid's sequence), at
	// some 32 bytes each.
	DefaultMaxRecords = 20_000_000
	// DefaultMaxReported is how many violations a Verdict describes in
	// full; all of them are counted.
	DefaultMaxReported = 20
	// DefaultPorcupineMaxOps is the largest number of per-uid sequence
	// operations that porcupine checks as a second opinion.
	DefaultPorcupineMaxOps = 50_000
	// DefaultPorcupineTimeout bounds porcupine's search on one uid.
	DefaultPorcupineTimeout = 10 * time.Second

	maxMaxRecords = 1 << 31 // records are indexed by int32
)

// Kinds of violation a Verdict counts.
const (
	// KindDuplicateID: the same ID was received twice, by any clients
	// from any servers (or twice in one answer).
	KindDuplicateID = "duplicate_id"
	// KindIDOrder: a server's IDs did not strictly increase in the order
	// it answered, either within one answer or between an answer and a
	// request sent after that answer arrived.
	KindIDOrder = "id_order"
	// KindIDTime: an ID's timestamp lies outside the time of its request,
	// widened by CheckConfig.Tolerance and Ahead.
	KindIDTime = "id_time"
	// KindSeqDuplicate: one uid's sequence number was handed out twice.
	KindSeqDuplicate = "seq_duplicate"
	// KindSeqRollback: one uid's sequences went backwards in real time: a
	// request sent after an answer arrived got a smaller sequence.
	KindSeqRollback = "seq_rollback"
	// KindBadAnswer: an answer broke the protocol (the client refused it,
	// or it carried no values, or not one sequence per uid).
	KindBadAnswer = "bad_answer"
	// KindCheckerDisagreement: porcupine and the order check disagreed
	// about a uid; one of them is wrong, so the run cannot be trusted.
	KindCheckerDisagreement = "checker_disagreement"
)

// CheckConfig configures a Checker. The zero value of every field means
// its default; Start must be set unless NoTimestamps is. A plain value.
type CheckConfig struct {
	// Layout decodes the timestamps of IDs. The zero Layout means
	// mig.DefaultLayout() (its epoch, 1970, is no real configuration).
	Layout mig.Layout
	// Start is a reading of the clock that timed the answers, taken at
	// the start of the run: answers' Call and Return are monotonic
	// readings of the same clock, and Start.Wall places them in wall time
	// (as Start.Wall + (mono - Start.Mono), so that a step of the load
	// generator's own wall clock during the run changes nothing).
	Start clock.Reading
	// Tolerance widens the time bounds of IDs on both sides, for the
	// difference between the servers' clocks and this one (default
	// DefaultTolerance).
	Tolerance time.Duration
	// Ahead is how far past its answer's arrival an ID's time may be: the
	// servers' borrow bound (default DefaultAhead). A deployment that
	// starts a new holder of a worker ID above the old holder's watermark
	// may need the watermark window here.
	Ahead time.Duration
	// NoTimestamps skips the time check: the values are not MIG IDs (a
	// Redis counter). Start may then be zero.
	NoTimestamps bool
	// MaxRecords bounds what the checker holds (default
	// DefaultMaxRecords); past it Record returns ErrHistoryFull.
	MaxRecords int
	// MaxReported is how many violations a Verdict describes (default
	// DefaultMaxReported).
	MaxReported int
	// PorcupineMaxOps is the most per-uid sequence operations porcupine
	// checks (default DefaultPorcupineMaxOps); a larger history is checked
	// by the order check alone. Negative disables porcupine.
	PorcupineMaxOps int
	// PorcupineTimeout bounds porcupine on one uid (default
	// DefaultPorcupineTimeout); a uid it cannot decide in time is counted
	// as unknown, not as a violation.
	PorcupineTimeout time.Duration
}

// Validate reports the first thing wrong with c, as a *FieldError.
func (c CheckConfig) Validate() error {
	switch {
	case c.Tolerance < 0:
		return fieldErr("Tolerance", c.Tolerance, "must not be negative")
	case c.Ahead < 0:
		return fieldErr("Ahead", c.Ahead, "must not be negative")
	case c.MaxRecords < 0 || c.MaxRecords > maxMaxRecords:
		return fieldErr("MaxRecords", c.MaxRecords, "must be in 0..%d", maxMaxRecords)
	case c.MaxReported < 0:
		return fieldErr("MaxReported", c.MaxReported, "must not be negative")
	case c.PorcupineTimeout < 0:
		return fieldErr("PorcupineTimeout", c.PorcupineTimeout, "must not be negative")
	case !c.NoTimestamps && c.Start.Wall.IsZero():
		return fieldErr("Start", "zero", "is needed to check the IDs' timestamps (or set NoTimestamps)")
	}
	return nil
}

func (c CheckConfig) withDefaults() CheckConfig {
	if c.Layout == (mig.Layout{}) {
		c.Layout = mig.DefaultLayout()
	}
	c.Tolerance = cmp.Or(c.Tolerance, DefaultTolerance)
	c.Ahead = cmp.Or(c.Ahead, DefaultAhead)
	c.MaxRecords = cmp.Or(c.MaxRecords, DefaultMaxRecords)
	c.MaxReported = cmp.Or(c.MaxReported, DefaultMaxReported)
	c.PorcupineMaxOps = cmp.Or(c.PorcupineMaxOps, DefaultPorcupineMaxOps)
	c.PorcupineTimeout = cmp.Or(c.PorcupineTimeout, DefaultPorcupineTimeout)
	return c
}

// Server is one server process as the checker tells them apart: the
// endpoint that answered and the worker ID its answer carried. A plain
// value.
type Server struct {
	Endpoint string
	WorkerID uint32
}

func (s Server) String() string { return fmt.Sprintf("%s worker %d", s.Endpoint, s.WorkerID) }

// IDAnswer is one NextIDs answer as a client received it. A plain value.
type IDAnswer struct {
	Client int    // which load client asked
	Server Server // who answered
	// Call and Return are monotonic readings of the run's clock (the one
	// CheckConfig.Start was read from), taken just before the request was
	// sent and just after its answer arrived.
	Call, Return time.Duration
	IDs          []mig.ID
}

// SeqAnswer is one NextSeq or NextSeqs answer as a client received it:
// Seqs[i] is the new sequence of UIDs[i]. A plain value.
type SeqAnswer struct {
	Client       int
	Endpoint     string // who answered, if known
	Call, Return time.Duration
	UIDs, Seqs   []uint64
}

// Verdict is what a Checker found. A plain value; it marshals to stable
// JSON.
type Verdict struct {
	Answers int64 `json:"answers"` // answers recorded
	IDs     int64 `json:"ids"`     // IDs in them
	Seqs    int64 `json:"seqs"`    // sequences in them
	Servers int   `json:"servers"` // distinct servers (endpoint and worker ID) that answered
	UIDs    int   `json:"uids"`    // distinct uids that got a sequence
	// Unrecorded counts answers the checker could not hold
	// (ErrHistoryFull): they were not checked.
	Unrecorded int64 `json:"unrecorded"`
	// Violations counts every violation found; ByKind splits the count by
	// kind (the Kind constants); Details describes the first MaxReported
	// found: protocol breaches seen while recording, then duplicates,
	// order, time, sequences, porcupine.
	Violations int64            `json:"violations"`
	ByKind     map[string]int64 `json:"by_kind"`
	Details    []Violation      `json:"details"`
	Porcupine  PorcupineResult  `json:"porcupine"`
}

// OK reports whether no violation was found.
func (v Verdict) OK() bool { return v.Violations == 0 }

// Violation is one broken promise, described with the offending values,
// clients, servers and times (as offsets from the run's start). A plain
// value.
type Violation struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// PorcupineResult is the second opinion on the per-uid sequences. A plain
// value.
type PorcupineResult struct {
	Ran     bool   `json:"ran"`
	Ops     int    `json:"ops"`     // per-uid operations checked
	UIDs    int    `json:"uids"`    // uids checked
	Illegal int    `json:"illegal"` // uids found not linearizable
	Unknown int    `json:"unknown"` // uids it could not decide in time
	Note    string `json:"note,omitempty"`
}

// Checker records the answers of a run and checks them against MIG's
// promises: IDs are unique across every client and server; each server's
// IDs strictly increase in the order it answered; IDs carry a time within
// their request's; each uid's sequences are linearizable as a counter that
// only grows. Safe for concurrent use: load clients record as they go, and
// Check may be called at any time.
//
// # What "in the order it answered" means
//
// Two requests in flight to one server at once may be answered in either
// order, and a client cannot tell which the server handled first. What it
// can tell is real-time order: if the answer to A arrived before B was
// sent, the server handled A before B, so every ID of A must be below every
// ID of B. The checker tests exactly that, for every such pair, in
// O(n log n) (see inversions). Concurrent requests are not ordered.
//
// # Per-uid sequences
//
// A uid's sequence is an object whose one operation returns a value above
// every value it returned before (gaps are allowed: a server restart
// skips to the persisted max_seq). A history of such operations is
// linearizable exactly when (1) no value is returned twice and (2) no
// operation that completed before another started returned a larger
// value: the only order in which the values grow is the order of the
// values, and it is a linearization exactly when it agrees with real time.
// So the primary check sorts a uid's operations by value and looks for a
// real-time inversion, in O(n log n), for millions of operations.
// Linearizability is local (Herlihy and Wing), so checking each uid alone
// is checking the whole; a batch answer counts as one operation per uid,
// all with the batch's interval (atomicity across uids is not promised).
//
// As a second opinion on that reasoning and on its code, porcupine, a
// general linearizability checker (an exponential search in the worst
// case), checks the same per-uid histories against the sequential model
// when they are small enough (CheckConfig.PorcupineMaxOps). When the two
// disagree the run fails with KindCheckerDisagreement.
//
// Failed requests are not recorded: their values are unknown, and a
// value a lost answer consumed can only make later values larger, which
// the checks allow. Checking completed operations alone never flags a
// correct history.
type Checker struct {
	cfg CheckConfig
	mu  struct {
		sync.Mutex
		answers    []answer
		runs       []idRun
		seqs       []seqEntry
		servers    map[Server]int32
		serverList []Server
		records    int
		ids, nseqs int64
		unrecorded int64
		bad        []Violation // found while recording, the first MaxReported
		badByKind  map[string]int64
	}
}

// answer is one recorded answer.
type answer struct {
	call, ret int64  // monotonic nanoseconds
	lo, hi    uint64 // ID answers: the smallest and the largest ID
	client    int32
	server    int32 // index into serverList
	isSeq     bool
}

// idRun is a run of consecutive IDs lo..hi of one answer. The generator
// hands out runs, so an answer of a thousand IDs is usually one or two.
type idRun struct {
	lo, hi uint64
	ans    int32
}

// seqEntry is one uid's sequence in one answer.
type seqEntry struct {
	uid, seq uint64
	ans      int32
}

// NewChecker returns a checker with nothing recorded. It returns a
// *FieldError wrapping ErrConfig when cfg is not valid.
func NewChecker(cfg CheckConfig) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Checker{cfg: cfg.withDefaults()}
	c.mu.servers = make(map[Server]int32)
	c.mu.badByKind = make(map[string]int64)
	return c, nil
}

// RecordIDs records one NextIDs answer. It does not keep a.IDs. It returns
// ErrInvalidAnswer when a.Return is before a.Call or a.Call before the
// run's start, and ErrHistoryFull when the checker holds MaxRecords
// records already; the answer is then not recorded. An answer with no IDs
// or with IDs not strictly increasing is recorded and counted as a
// violation.
func (c *Checker) RecordIDs(a IDAnswer) error {
	if err := c.validTimes(a.Call, a.Return); err != nil {
		return err
	}
	nruns := 0
	for i, id := range a.IDs {
		if i == 0 || id != a.IDs[i-1]+1 {
			nruns++
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.records+1+nruns > c.cfg.MaxRecords {
		c.mu.unrecorded++
		return ErrHistoryFull
	}
	c.mu.records += 1 + nruns
	ans := answer{call: int64(a.Call), ret: int64(a.Return), client: int32(a.Client), server: c.serverLocked(a.Server)}
	k := int32(len(c.mu.answers))
	if len(a.IDs) == 0 {
		c.badLocked(KindBadAnswer, "%s: an answer with no IDs", c.describeLocked(ans))
		return nil
	}
	ans.lo, ans.hi = uint64(a.IDs[0]), uint64(a.IDs[0])
	for i, id := range a.IDs {
		v := uint64(id)
		ans.lo, ans.hi = min(ans.lo, v), max(ans.hi, v)
		if i > 0 && id <= a.IDs[i-1] {
			c.badLocked(KindIDOrder, "%s: IDs not strictly increasing within one answer: %d at index %d after %d", c.describeLocked(ans), id, i, a.IDs[i-1])
		}
		if i == 0 || id != a.IDs[i-1]+1 {
			c.mu.runs = append(c.mu.runs, idRun{lo: v, hi: v, ans: k})
		} else {
			c.mu.runs[len(c.mu.runs)-1].hi = v
		}
	}
	c.mu.answers = append(c.mu.answers, ans)
	c.mu.ids += int64(len(a.IDs))
	return nil
}

// RecordSeqs records one NextSeq or NextSeqs answer. It does not keep the
// slices. Its errors are those of RecordIDs. An answer with no sequences,
// or whose Seqs and UIDs differ in length, is counted as a violation and
// its values are not checked.
func (c *Checker) RecordSeqs(a SeqAnswer) error {
	if err := c.validTimes(a.Call, a.Return); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.records+1+len(a.Seqs) > c.cfg.MaxRecords {
		c.mu.unrecorded++
		return ErrHistoryFull
	}
	c.mu.records += 1 + len(a.Seqs)
	ans := answer{call: int64(a.Call), ret: int64(a.Return), client: int32(a.Client), server: c.serverLocked(Server{Endpoint: a.Endpoint}), isSeq: true}
	if len(a.Seqs) == 0 || len(a.Seqs) != len(a.UIDs) {
		c.badLocked(KindBadAnswer, "%s: %d sequences for %d uids", c.describeLocked(ans), len(a.Seqs), len(a.UIDs))
		return nil
	}
	k := int32(len(c.mu.answers))
	c.mu.answers = append(c.mu.answers, ans)
	for i, uid := range a.UIDs {
		c.mu.seqs = append(c.mu.seqs, seqEntry{uid: uid, seq: a.Seqs[i], ans: k})
	}
	c.mu.nseqs += int64(len(a.Seqs))
	return nil
}

// RecordBadAnswer records an answer the client refused as breaking the
// protocol (migclient.ErrBadAnswer): a violation, since the checker never sees
// the values. Its errors are those of RecordIDs.
func (c *Checker) RecordBadAnswer(client int, endpoint string, call, ret time.Duration, cause error) error {
	if err := c.validTimes(call, ret); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ans := answer{call: int64(call), ret: int64(ret), client: int32(client), server: c.serverLocked(Server{Endpoint: endpoint})}
	c.badLocked(KindBadAnswer, "%s: %v", c.describeLocked(ans), cause)
	return nil
}

func (c *Checker) validTimes(call, ret time.Duration) error {
	if ret < call || call < c.cfg.Start.Mono {
		return fmt.Errorf("%w: sent at %v, answered at %v, run started at %v (monotonic)", ErrInvalidAnswer, call, ret, c.cfg.Start.Mono)
	}
	return nil
}

func (c *Checker) serverLocked(s Server) int32 {
	if k, ok := c.mu.servers[s]; ok {
		return k
	}
	k := int32(len(c.mu.serverList))
	c.mu.servers[s] = k
	c.mu.serverList = append(c.mu.serverList, s)
	return k
}

func (c *Checker) badLocked(kind, format string, args ...any) {
	c.mu.badByKind[kind]++
	if len(c.mu.bad) < c.cfg.MaxReported {
		c.mu.bad = append(c.mu.bad, Violation{Kind: kind, Message: fmt.Sprintf(format, args...)})
	}
}

// at formats a monotonic reading as an offset from the run's start.
func (c *Checker) at(mono int64) string {
	return fmt.Sprintf("+%.6fs", time.Duration(mono-int64(c.cfg.Start.Mono)).Seconds())
}

// wallAt places a monotonic reading in wall time.
func (c *Checker) wallAt(mono int64) time.Time {
	return c.cfg.Start.Wall.Add(time.Duration(mono) - c.cfg.Start.Mono)
}

// describeLocked names an answer: its client, server and times.
func (c *Checker) describeLocked(a answer) string {
	s := c.mu.serverList[a.server]
	who := s.Endpoint
	if who == "" {
		who = "an unknown server"
	}
	if !a.isSeq {
		who = s.String()
	}
	return fmt.Sprintf("client %d from %s (sent %s, answered %s)", a.client, who, c.at(a.call), c.at(a.ret))
}

func valueRange(lo, hi uint64) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

// finding collects the violations of one Check.
type finding struct {
	max    int
	count  int64
	byKind map[string]int64
	found  []Violation
}

func (f *finding) add(kind, format string, args ...any) {
	f.count++
	f.byKind[kind]++
	if len(f.found) < f.max {
		f.found = append(f.found, Violation{Kind: kind, Message: fmt.Sprintf(format, args...)})
	}
}

// Check checks everything recorded so far and returns the verdict. It may
// take a while on a large history (it sorts it) and holds the checker's
// lock meanwhile.
func (c *Checker) Check() Verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &finding{max: c.cfg.MaxReported, byKind: maps.Clone(c.mu.badByKind)}
	for _, n := range f.byKind {
		f.count += n
	}
	f.found = slices.Clone(c.mu.bad)

	c.checkUniqueLocked(f)
	c.checkServerOrderLocked(f)
	if !c.cfg.NoTimestamps {
		c.checkTimesLocked(f)
	}
	uids, pairs := c.checkSeqsLocked(f)
	v := Verdict{
		Answers:    int64(len(c.mu.answers)),
		IDs:        c.mu.ids,
		Seqs:       c.mu.nseqs,
		Servers:    c.countServersLocked(),
		UIDs:       uids,
		Unrecorded: c.mu.unrecorded,
		Violations: f.count,
		ByKind:     f.byKind,
	}
	v.Porcupine = c.porcupineLocked(f, pairs)
	v.Violations = f.count
	v.Details = f.found
	return v
}

// countServersLocked counts the servers that gave an answer with values.
func (c *Checker) countServersLocked() int {
	seen := make(map[int32]bool)
	for _, a := range c.mu.answers {
		seen[a.server] = true
	}
	return len(seen)
}

// checkUniqueLocked finds IDs received twice: with the runs sorted by
// their first ID, a run that starts at or below the highest ID seen so far
// repeats IDs.
func (c *Checker) checkUniqueLocked(f *finding) {
	runs := c.mu.runs
	slices.SortFunc(runs, func(a, b idRun) int { return cmp.Compare(a.lo, b.lo) })
	var top idRun // the run reaching highest so far
	for i, r := range runs {
		if i > 0 && r.lo <= top.hi {
			hi := min(r.hi, top.hi)
			a, b := c.mu.answers[top.ans], c.mu.answers[r.ans]
			f.add(KindDuplicateID, "ID %s received twice (%d IDs): by %s and by %s",
				valueRange(r.lo, hi), hi-r.lo+1, c.describeLocked(a), c.describeLocked(b))
		}
		if i == 0 || r.hi > top.hi {
			top = r
		}
	}
}

// span is one operation for the real-time order check: the values lo..hi
// it got, and when it was sent and answered.
type span struct {
	lo, hi    uint64
	call, ret int64
	ans       int32
}

// inversions calls found(a, b) for operations a and b where a completed
// before b was sent (a.ret < b.call), yet a got a value at or above one
// of b's (a.hi >= b.lo): a step backwards in real time. It reports at most
// one a for each b, the one that completed first, and takes O(n log n).
//
// It walks the operations b by decreasing lo, adding to a set every
// operation a with a.hi >= b.lo (by decreasing hi); the set only grows,
// and only its earliest completion matters, so it is one value.
func inversions(ops []span, found func(a, b span)) {
	byHi := slices.Clone(ops)
	slices.SortFunc(byHi, func(x, y span) int { return cmp.Compare(y.hi, x.hi) })
	slices.SortFunc(ops, func(x, y span) int { return cmp.Compare(y.lo, x.lo) })
	j := 0
	var first span // in the set, the one that completed first
	have := false
	for _, b := range ops {
		for ; j < len(byHi) && byHi[j].hi >= b.lo; j++ {
			if !have || byHi[j].ret < first.ret {
				first, have = byHi[j], true
			}
		}
		// An operation never precedes itself (call <= ret), so a is not b.
		// HAZARD: strictly before. Intervals are closed, as porcupine's
		// are: an answer that arrived at the very instant another request
		// left did not provably precede it, and <= here would flag a
		// correct service.
		if have && first.ret < b.call {
			found(first, b)
		}
	}
}

// checkServerOrderLocked runs the real-time order check on each server's
// ID answers.
func (c *Checker) checkServerOrderLocked(f *finding) {
	byServer := make(map[int32][]span)
	for k, a := range c.mu.answers {
		if !a.isSeq {
			byServer[a.server] = append(byServer[a.server], span{lo: a.lo, hi: a.hi, call: a.call, ret: a.ret, ans: int32(k)})
		}
	}
	for _, s := range slices.Sorted(maps.Keys(byServer)) {
		inversions(byServer[s], func(a, b span) {
			f.add(KindIDOrder, "%s went backwards: %s got %s, then %s got %s",
				c.mu.serverList[s], c.describeLocked(c.mu.answers[a.ans]), valueRange(a.lo, a.hi),
				c.describeLocked(c.mu.answers[b.ans]), valueRange(b.lo, b.hi))
		})
	}
}

// checkTimesLocked checks that every ID's time is within its request's:
// no earlier than the request was sent, no later than its answer arrived
// plus Ahead, both widened by Tolerance (and the lower bound by one tick,
// as an ID carries the start of its tick). IDs within an answer increase,
// and so do their times, so the first and last suffice.
func (c *Checker) checkTimesLocked(f *finding) {
	l := c.cfg.Layout
	for _, a := range c.mu.answers {
		if a.isSeq {
			continue
		}
		lower := c.wallAt(a.call).Add(-c.cfg.Tolerance - mig.Tick)
		upper := c.wallAt(a.ret).Add(c.cfg.Ahead + c.cfg.Tolerance)
		for _, id := range []uint64{a.lo, a.hi} {
			if id>>63 != 0 {
				f.add(KindIDTime, "ID %d from %s has the sign bit set", id, c.describeLocked(a))
				break
			}
			t := l.Time(mig.ID(id))
			if t.Before(lower) || t.After(upper) {
				f.add(KindIDTime, "ID %d from %s has time %s, outside %s..%s (its request's time with tolerance %v and ahead %v)",
					id, c.describeLocked(a), t.Format(time.RFC3339Nano), lower.Format(time.RFC3339Nano), upper.Format(time.RFC3339Nano),
					c.cfg.Tolerance, c.cfg.Ahead)
				break
			}
			if a.lo == a.hi {
				break
			}
		}
	}
}

// checkSeqsLocked checks each uid's sequences: no value twice, and no
// real-time inversion. It returns the number of distinct uids and the
// uids it found violations on (for comparing with porcupine).
func (c *Checker) checkSeqsLocked(f *finding) (int, map[uint64]bool) {
	seqs := c.mu.seqs
	slices.SortFunc(seqs, func(a, b seqEntry) int {
		return cmp.Or(cmp.Compare(a.uid, b.uid), cmp.Compare(a.seq, b.seq))
	})
	flagged := make(map[uint64]bool)
	uids := 0
	for i := 0; i < len(seqs); {
		j := i + 1
		for j < len(seqs) && seqs[j].uid == seqs[i].uid {
			j++
		}
		uids++
		uid := seqs[i].uid
		ops := make([]span, 0, j-i)
		for k := i; k < j; k++ {
			e := seqs[k]
			if k > i && e.seq == seqs[k-1].seq {
				flagged[uid] = true
				f.add(KindSeqDuplicate, "uid %d: sequence %d handed out twice: to %s and to %s",
					uid, e.seq, c.describeLocked(c.mu.answers[seqs[k-1].ans]), c.describeLocked(c.mu.answers[e.ans]))
			}
			a := c.mu.answers[e.ans]
			ops = append(ops, span{lo: e.seq, hi: e.seq, call: a.call, ret: a.ret, ans: e.ans})
		}
		inversions(ops, func(a, b span) {
			flagged[uid] = true
			f.add(KindSeqRollback, "uid %d rolled back: %s got sequence %d, then %s got %d",
				uid, c.describeLocked(c.mu.answers[a.ans]), a.lo, c.describeLocked(c.mu.answers[b.ans]), b.lo)
		})
		i = j
	}
	return uids, flagged
}

// sortedKinds is the order in which a text report lists kinds.
var sortedKinds = []string{KindDuplicateID, KindIDOrder, KindIDTime, KindSeqDuplicate, KindSeqRollback, KindBadAnswer, KindCheckerDisagreement}

// Summary is a one-line account of v, such as "ok: 120000 answers,
// 1200000 IDs from 3 servers" or "FAILED: 2 violations (duplicate_id 1,
// seq_rollback 1)".
func (v Verdict) Summary() string {
	var b strings.Builder
	if v.OK() {
		b.WriteString("ok: ")
	} else {
		fmt.Fprintf(&b, "FAILED: %d violations (", v.Violations)
		sep := ""
		for _, k := range sortedKinds {
			if n := v.ByKind[k]; n > 0 {
				fmt.Fprintf(&b, "%s%s %d", sep, k, n)
				sep = ", "
			}
		}
		b.WriteString("); ")
	}
	fmt.Fprintf(&b, "%d answers", v.Answers)
	if v.IDs > 0 {
		fmt.Fprintf(&b, ", %d IDs from %d servers", v.IDs, v.Servers)
	}
	if v.Seqs > 0 {
		fmt.Fprintf(&b, ", %d sequences of %d uids", v.Seqs, v.UIDs)
	}
	if v.Unrecorded > 0 {
		fmt.Fprintf(&b, ", %d answers NOT checked (history full)", v.Unrecorded)
	}
	return b.String()
}
