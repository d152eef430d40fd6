package loadtest

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/rpc/migv1"
)

// Mode is what the load asks for. A plain value.
type Mode int

const (
	// ModeIDs calls NextIDs, Config.Batch IDs a call.
	ModeIDs Mode = iota
	// ModeSeq calls NextSeq (Batch 1) or NextSeqs (Batch distinct uids).
	ModeSeq
)

func (m Mode) String() string {
	switch m {
	case ModeIDs:
		return "ids"
	case ModeSeq:
		return "seq"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode returns the mode named s ("ids" or "seq").
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{ModeIDs, ModeSeq} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fieldErr("Mode", fmt.Sprintf("%q", s), "is not ids or seq")
}

// DistKind is the shape of a uid distribution. A plain value.
type DistKind int

const (
	// DistUniform draws every uid with the same probability.
	DistUniform DistKind = iota
	// DistHot sends Dist.HotCalls of the calls to Dist.HotUIDs of the
	// uids, and the rest to the other uids, uniformly within each part.
	DistHot
	// DistZipf draws uids by Zipf's law with Dist.ZipfS and ZipfV: the
	// uid of rank k with probability proportional to (ZipfV + k)^-ZipfS.
	DistZipf
)

func (k DistKind) String() string {
	switch k {
	case DistUniform:
		return "uniform"
	case DistHot:
		return "hot"
	case DistZipf:
		return "zipf"
	}
	return fmt.Sprintf("DistKind(%d)", int(k))
}

// ParseDistKind returns the distribution named s ("uniform", "hot" or
// "zipf").
func ParseDistKind(s string) (DistKind, error) {
	for _, k := range []DistKind{DistUniform, DistHot, DistZipf} {
		if s == k.String() {
			return k, nil
		}
	}
	return 0, fieldErr("Dist.Kind", fmt.Sprintf("%q", s), "is not uniform, hot or zipf")
}

// Defaults of Config and Dist.
const (
	DefaultClients  = 10
	DefaultDuration = 10 * time.Second
	DefaultBatch    = 1
	DefaultInterval = time.Second
	DefaultTimeout  = migclient.DefaultTimeout
	DefaultUIDs     = 1_000_000
	// DefaultUIDSpace is the servers' default uid limit (mig serve
	// --uid-limit): valid uids are 1..2^32-1.
	DefaultUIDSpace = 1 << 32
	// DefaultBackoff and DefaultMaxBackoff bound how long a client of
	// the closed loop waits after a failed request: the first wait, and
	// the most it grows to.
	DefaultBackoff    = 10 * time.Millisecond
	DefaultMaxBackoff = 500 * time.Millisecond
	DefaultHotCalls   = 0.9
	DefaultHotUIDs    = 0.01
	DefaultZipfS      = 1.1
	DefaultZipfV      = 1.0
	// DefaultRedisPrefix begins the keys the Redis phase increments:
	// <prefix>ids, and <prefix>seq:<uid>.
	DefaultRedisPrefix = "mig-loadtest:"

	// Bounds: a load test is bounded in every dimension.
	MaxClients    = 10_000
	MaxDuration   = 24 * time.Hour
	MaxCount      = 10_000_000_000
	MaxRate       = 10_000_000
	MaxSeqBatch   = 10_000
	MaxUIDs       = 1 << 40
	MinInterval   = 10 * time.Millisecond
	MaxInterval   = time.Hour
	MaxTimeout    = 10 * time.Minute
	MaxBackoff    = time.Minute
	maxSeriesLen  = 1_000_000 // intervals in one run
	maxRedisBatch = migv1.MaxCount
)

// Dist is a distribution of UIDs uids, spread evenly over the uid space
// 1..Space-1: the uids are Stride, 2*Stride, ..., UIDs*Stride, where
// Stride = (Space-1)/UIDs. Spread so, they fall into every group of
// sections, and so on every node of a cluster (a group is 128 sections
// of 100,000 consecutive uids by default: uids 1..1,000,000 would all be
// in group 0, on one node). The zero value of every field means its
// default. A plain value.
type Dist struct {
	Kind DistKind
	// UIDs is how many uids there are (default DefaultUIDs).
	UIDs uint64
	// Space is the servers' uid limit, which the uids spread below
	// (default DefaultUIDSpace, mig serve's default --uid-limit). UIDs+1
	// gives the uids 1..UIDs.
	Space uint64
	// HotCalls is the share of calls that go to the hot set, in (0, 1]
	// (DistHot; default DefaultHotCalls).
	HotCalls float64
	// HotUIDs is the share of uids in the hot set, in (0, 1] (DistHot;
	// default DefaultHotUIDs); at least one uid is hot.
	HotUIDs float64
	// ZipfS (> 1) and ZipfV (>= 1) are the parameters of math/rand/v2's
	// Zipf (DistZipf; defaults DefaultZipfS, DefaultZipfV).
	ZipfS, ZipfV float64
}

func (d Dist) withDefaults() Dist {
	d.UIDs = cmp.Or(d.UIDs, DefaultUIDs)
	d.Space = cmp.Or(d.Space, DefaultUIDSpace)
	d.HotCalls = cmp.Or(d.HotCalls, DefaultHotCalls)
	d.HotUIDs = cmp.Or(d.HotUIDs, DefaultHotUIDs)
	d.ZipfS = cmp.Or(d.ZipfS, DefaultZipfS)
	d.ZipfV = cmp.Or(d.ZipfV, DefaultZipfV)
	return d
}

// Validate reports the first thing wrong with d, as a *FieldError.
func (d Dist) Validate() error {
	switch {
	case d.Kind < DistUniform || d.Kind > DistZipf:
		return fieldErr("Kind", d.Kind, "is not a distribution")
	case d.UIDs > MaxUIDs:
		return fieldErr("UIDs", d.UIDs, "must be at most %d", uint64(MaxUIDs))
	case d.Space == 1:
		return fieldErr("Space", d.Space, "leaves no uid: uids are 1..Space-1")
	case d.withDefaults().UIDs > d.withDefaults().Space-1:
		return fieldErr("UIDs", d.UIDs, "must be below the uid space %d: uids are 1..%d", d.withDefaults().Space, d.withDefaults().Space-1)
	case !(d.HotCalls >= 0 && d.HotCalls <= 1):
		return fieldErr("HotCalls", d.HotCalls, "must be in (0, 1]")
	case !(d.HotUIDs >= 0 && d.HotUIDs <= 1):
		return fieldErr("HotUIDs", d.HotUIDs, "must be in (0, 1]")
	case d.ZipfS != 0 && !(d.ZipfS > 1 && d.ZipfS < math.Inf(1)):
		return fieldErr("ZipfS", d.ZipfS, "must be above 1")
	case d.ZipfV != 0 && !(d.ZipfV >= 1 && d.ZipfV < math.Inf(1)):
		return fieldErr("ZipfV", d.ZipfV, "must be at least 1")
	}
	return nil
}

// Stride is the distance between neighbouring uids: (Space-1)/UIDs,
// defaults set.
func (d Dist) Stride() uint64 {
	d = d.withDefaults()
	return max((d.Space-1)/d.UIDs, 1)
}

func (d Dist) String() string {
	d = d.withDefaults()
	uids := fmt.Sprintf("%d uids", d.UIDs)
	if st := d.Stride(); st > 1 {
		uids = fmt.Sprintf("%d uids %d apart, up to %d", d.UIDs, st, d.UIDs*st)
	}
	switch d.Kind {
	case DistHot:
		return fmt.Sprintf("hot (%g%% of calls to %g%% of %s)", d.HotCalls*100, d.HotUIDs*100, uids)
	case DistZipf:
		return fmt.Sprintf("zipf (s=%g, v=%g, %s)", d.ZipfS, d.ZipfV, uids)
	}
	return fmt.Sprintf("uniform (%s)", uids)
}

// Config is the shape of a load test. The zero value of every field
// means its default: 10 clients in a closed loop for 10 s, asking for one
// ID at a time. A plain value (Progress and Clock are used by one Run at
// a time).
type Config struct {
	Mode Mode
	// Clients is how many requests may be in flight at once: goroutines,
	// each with its own connection to Redis (default DefaultClients).
	Clients int
	// Rate is the open loop's rate in requests a second, shared by the
	// clients; 0 runs a closed loop.
	Rate float64
	// Duration bounds the run (default DefaultDuration when Count is 0,
	// else none). Requests in flight at the end are waited for.
	Duration time.Duration
	// Count bounds the number of requests (0: none). With both Duration
	// and Count the run ends at the first.
	Count int64
	// Batch is the IDs (ModeIDs) or distinct uids (ModeSeq) of one request
	// (default 1).
	Batch int
	// Dist draws the uids of ModeSeq.
	Dist Dist
	// Seed seeds the uid draws; 0 picks one at random. The Result says
	// which was used.
	Seed uint64
	// Timeout bounds each Redis command (default DefaultTimeout). The
	// clients in Targets carry their own timeouts.
	Timeout time.Duration
	// Backoff and MaxBackoff pace a client of the closed loop whose
	// requests fail: after n failures in a row it waits about
	// Backoff*2^(n-1), at most MaxBackoff, before its next request, so
	// that a target that is down (or refuses connections, and fails each
	// request at once) is not sent tens of thousands of requests a
	// second (defaults DefaultBackoff, DefaultMaxBackoff). Each wait is
	// between half and all of that, drawn at random, so that the clients
	// do not come back in step. The open loop needs none: its schedule
	// paces every request.
	Backoff, MaxBackoff time.Duration
	// Interval is the period of the progress line and of the latency
	// series (default DefaultInterval).
	Interval time.Duration
	// Progress receives a progress line every Interval while the load
	// runs (nil: none). With Terminal each line overwrites the last
	// (carriage return); otherwise each ends with a newline.
	Progress io.Writer
	Terminal bool
	// Clock times everything (nil: clock.NewReal()).
	Clock clock.Source
	// Check configures the checkers. Start is set by Run. For the Redis
	// phase, NoTimestamps is set too: its values are counters.
	Check CheckConfig
	// RedisAddr, when set, is the host:port of a Redis to run the same
	// load against after MIG, with INCR and INCRBY on keys that begin
	// with RedisPrefix (default DefaultRedisPrefix).
	RedisAddr   string
	RedisPrefix string
}

// Validate reports the first thing wrong with c, as a *FieldError whose
// Field is the Config field's name ("Dist.ZipfS" for nested fields).
func (c Config) Validate() error {
	switch {
	case c.Mode != ModeIDs && c.Mode != ModeSeq:
		return fieldErr("Mode", c.Mode, "is not ids or seq")
	case c.Clients < 0 || c.Clients > MaxClients:
		return fieldErr("Clients", c.Clients, "must be in 1..%d", MaxClients)
	case !(c.Rate >= 0 && c.Rate <= MaxRate):
		return fieldErr("Rate", c.Rate, "must be in 0..%d requests a second (0: closed loop)", MaxRate)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fieldErr("Duration", c.Duration, "must be in 0..%v", MaxDuration)
	case c.Count < 0 || c.Count > MaxCount:
		return fieldErr("Count", c.Count, "must be in 0..%d", int64(MaxCount))
	case c.Timeout < 0 || c.Timeout > MaxTimeout:
		return fieldErr("Timeout", c.Timeout, "must be in 0..%v", MaxTimeout)
	case c.Interval != 0 && (c.Interval < MinInterval || c.Interval > MaxInterval):
		return fieldErr("Interval", c.Interval, "must be in %v..%v", MinInterval, MaxInterval)
	case c.Backoff < 0 || c.Backoff > MaxBackoff:
		return fieldErr("Backoff", c.Backoff, "must be in 0..%v", MaxBackoff)
	case c.MaxBackoff < 0 || c.MaxBackoff > MaxBackoff:
		return fieldErr("MaxBackoff", c.MaxBackoff, "must be in 0..%v", MaxBackoff)
	}
	if r := c.withDefaults(); r.Backoff > r.MaxBackoff {
		return fieldErr("MaxBackoff", c.MaxBackoff, "must be at least the first wait, %v", r.Backoff)
	}
	maxBatch := migv1.MaxCount
	if c.Mode == ModeSeq {
		maxBatch = MaxSeqBatch
	}
	if c.Batch < 0 || c.Batch > maxBatch {
		return fieldErr("Batch", c.Batch, "must be in 1..%d in %s mode", maxBatch, c.Mode)
	}
	if err := c.Dist.Validate(); err != nil {
		return prefixField("Dist", err)
	}
	r := c.withDefaults()
	if c.Mode == ModeSeq && uint64(r.Batch) > r.Dist.UIDs {
		return fieldErr("Batch", c.Batch, "must not exceed the %d uids: a batch has distinct uids", r.Dist.UIDs)
	}
	if r.Duration > 0 && r.Duration/r.Interval > maxSeriesLen {
		return fieldErr("Interval", r.Interval, "is too short for a run of %v (at most %d intervals)", r.Duration, maxSeriesLen)
	}
	check := c.Check
	check.Start = clock.Reading{Wall: time.Unix(0, 0)} // set by Run
	if err := check.Validate(); err != nil {
		return prefixField("Check", err)
	}
	return nil
}

// withDefaults returns c with every zero field that has a default set to it.
func (c Config) withDefaults() Config {
	c.Clients = cmp.Or(c.Clients, DefaultClients)
	if c.Count == 0 {
		c.Duration = cmp.Or(c.Duration, DefaultDuration)
	}
	c.Batch = cmp.Or(c.Batch, DefaultBatch)
	c.Dist = c.Dist.withDefaults()
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.Backoff = cmp.Or(c.Backoff, DefaultBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, max(DefaultMaxBackoff, c.Backoff))
	c.RedisPrefix = cmp.Or(c.RedisPrefix, DefaultRedisPrefix)
	if c.Clock == nil {
		c.Clock = clock.NewReal()
	}
	return c
}

// loop names the load's loop for reports.
func (c Config) loop() string {
	if c.Rate > 0 {
		return "open"
	}
	return "closed"
}
