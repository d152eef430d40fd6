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
	DefaultHotCalls = 0.9
	DefaultHotUIDs  = 0.01
	DefaultZipfS    = 1.1
	DefaultZipfV    = 1.0
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
	maxSeriesLen  = 1_000_000 // intervals in one run
	maxRedisBatch = migv1.MaxCount
)

// Dist is a distribution of uids over 1..UIDs. The zero value of every
// field means its default. A plain value.
type Dist struct {
	Kind DistKind
	// UIDs is how many uids there are: 1..UIDs (default DefaultUIDs).
	UIDs uint64
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

func (d Dist) String() string {
	d = d.withDefaults()
	switch d.Kind {
	case DistHot:
		return fmt.Sprintf("hot (%g%% of calls to %g%% of %d uids)", d.HotCalls*100, d.HotUIDs*100, d.UIDs)
	case DistZipf:
		return fmt.Sprintf("zipf (s=%g, v=%g, %d uids)", d.ZipfS, d.ZipfV, d.UIDs)
	}
	return fmt.Sprintf("uniform (%d uids)", d.UIDs)
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
