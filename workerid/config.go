package workerid

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/mig"
)

// Errors returned by this package.
var (
	// ErrConfig is wrapped by every configuration error.
	ErrConfig = errors.New("workerid: invalid configuration")
	// ErrRangeFull is returned when every worker ID in the datacenter's
	// range is held.
	ErrRangeFull = errors.New("workerid: worker ID range full")
	// ErrMismatch is returned when the configuration disagrees with what
	// etcd records for the cluster: the layout, the datacenter the cluster
	// belongs to, or the datacenters' ranges.
	ErrMismatch = errors.New("workerid: configuration disagrees with the cluster")
	// ErrUnavailable is wrapped by every error with which Next and NextN
	// refuse to issue now: no worker ID held or the lease's deadline
	// passed (ErrNotHeld), the clock unsafe (ErrClockUnsafe), the
	// generator stopped, its watermark reached,
	// its sequence numbers used up with NoWait or the clock outside the
	// layout (mig.ErrFenced, mig.ErrCeiling, mig.ErrExhausted,
	// mig.ErrClockRange). Such a call consumed nothing: the caller should
	// answer "unavailable" and let its client retry elsewhere. It is
	// mig.ErrUnavailable, so that the generator's refusals, which the
	// worker passes on, belong to it as they are.
	ErrUnavailable = mig.ErrUnavailable
	// ErrNotHeld is returned by Next and NextN while the worker holds no
	// worker ID (fenced, or not yet re-claimed) or once its lease's
	// deadline has passed. It is of the ErrUnavailable family.
	ErrNotHeld error = &unavailableError{"workerid: no worker ID held"}
	// ErrClockUnsafe is returned by Next and NextN while Config.ClockCheck
	// says the wall clock cannot be trusted, wrapping its error. It is of
	// the ErrUnavailable family.
	ErrClockUnsafe error = &unavailableError{"workerid: clock unsafe"}
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("workerid: worker closed")
	// ErrUnreachable is returned by Start when etcd did not answer in time.
	ErrUnreachable = errors.New("workerid: etcd unreachable")
)

// unavailableError is a sentinel of the ErrUnavailable family: an error of
// its own, with its own text, for which errors.Is(err, ErrUnavailable)
// holds too.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string { return e.msg }
func (e *unavailableError) Unwrap() error { return ErrUnavailable }

// Range is an inclusive range of worker IDs.
type Range struct{ First, Last uint32 }

// ParseRange parses "A-B" or a single "A".
func ParseRange(s string) (Range, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		b = a
	}
	first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if err1 != nil || err2 != nil {
		return Range{}, fmt.Errorf("%w: worker range %q is not of the form A-B (like 0-15)", ErrConfig, s)
	}
	r := Range{uint32(first), uint32(last)}
	return r, r.validate()
}

func (r Range) validate() error {
	if r.First > r.Last || r.Last > mig.MaxWorker {
		return fmt.Errorf("%w: worker range %s must satisfy 0 <= first <= last <= %d", ErrConfig, r, mig.MaxWorker)
	}
	return nil
}

// String returns "A-B".
func (r Range) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Len returns the number of worker IDs in r.
func (r Range) Len() int { return int(r.Last-r.First) + 1 }

func (r Range) overlaps(o Range) bool { return r.First <= o.Last && o.First <= r.Last }

// Defaults of Config.
const (
	DefaultPrefix         = "/mig"
	DefaultTTL            = lease.DefaultTTL
	DefaultMargin         = lease.DefaultMargin
	DefaultWindow         = 10 * time.Second
	DefaultRequestTimeout = lease.DefaultRequestTimeout
	DefaultStartTimeout   = 10 * time.Second
)

// Config configures a Worker. Zero values mean the defaults.
type Config struct {
	// Datacenter names this worker's datacenter; required. The first
	// worker records it as the datacenter the etcd cluster belongs to,
	// and a worker of another datacenter is refused there.
	Datacenter string
	// Range is the datacenter's worker-ID range; required in the sense
	// that the zero Range is the single ID 0.
	Range Range
	// Others lists the other datacenters' ranges, each datacenter having
	// an etcd cluster of its own. The cluster records them, and a worker
	// starts only if it lists every datacenter its cluster records, with
	// the recorded range; one listed that the cluster does not record yet
	// is recorded, which is how a datacenter is added. Empty is right
	// only for a cluster that records no other datacenter.
	Others map[string]Range
	// Layout is the ID layout, recorded in etcd by the first worker and
	// checked by every later one.
	Layout mig.Layout
	// Prefix is the etcd key prefix (default "/mig").
	Prefix string
	// Holder describes this worker in its claim (for operators), e.g.
	// host:port. Default: the host name.
	Holder string
	// TTL is the etcd lease TTL requested (default 5s); the server may
	// grant more, and the granted TTL is what the deadline uses.
	TTL time.Duration
	// Margin is subtracted from every lease deadline (default 1s): it
	// covers clock-rate error between this host and etcd's leader and the
	// time a fence can take to act. Must be less than TTL.
	Margin time.Duration
	// Window is how far ahead of the clock the watermark is persisted
	// (default 10s). A crash leaves the next holder up to Window ahead of
	// its wall clock (it then slews back); a larger window means fewer etcd
	// writes: one per Window/2.
	Window time.Duration
	// RequestTimeout bounds every etcd call (default 1s).
	RequestTimeout time.Duration
	// StartTimeout bounds Start's first claim (default 10s).
	StartTimeout time.Duration
	// Borrow and NoWait are passed to each generator (see mig.Config).
	Borrow time.Duration
	NoWait bool
	// ClockCheck, when not nil, is asked before every Next and NextN
	// whether the wall clock can be trusted (*ntp.Monitor of package
	// clock/ntp checks it against NTP); while it says no, they refuse with
	// ErrClockUnsafe. Uniqueness never rests on the wall clock (the ID
	// clock never goes back, and a new holder starts above the persisted
	// watermark): what an unsafe clock breaks is that IDs are ordered by
	// real time across workers, so the worker stops until the host's
	// clock is corrected. Nor does it extend its watermark by the ID
	// clock meanwhile: one that followed a wrong wall clock would persist
	// it as far ahead.
	ClockCheck ClockChecker
	// Logger receives claims, fences and errors; nil discards.
	Logger *slog.Logger
}

// ClockChecker says whether the host's wall clock can be trusted to date
// IDs. Implementations must be safe for concurrent use.
type ClockChecker interface {
	// CheckClock returns nil while the clock is safe and otherwise an
	// error saying why. It is called on every Next and NextN: it must be
	// cheap and must not block.
	CheckClock() error
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Margin == 0 {
		c.Margin = DefaultMargin
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.Borrow == 0 {
		c.Borrow = min(mig.DefaultBorrow, c.Window/4)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// leaseConfig is the part of c that configures the lease.
func (c Config) leaseConfig() lease.Config {
	return lease.Config{TTL: c.TTL, Margin: c.Margin, RequestTimeout: c.RequestTimeout}
}

// Validate reports the first thing wrong with c; every error wraps
// ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Datacenter == "" || strings.ContainsAny(c.Datacenter, "/ \t\n") {
		return fmt.Errorf("%w: datacenter name %q must be non-empty, without '/' or spaces", ErrConfig, c.Datacenter)
	}
	if err := c.Range.validate(); err != nil {
		return err
	}
	others := slices.Sorted(maps.Keys(c.Others))
	for i, dc := range others {
		r := c.Others[dc]
		if dc == c.Datacenter {
			return fmt.Errorf("%w: datacenter %s listed among the others too", ErrConfig, dc)
		}
		if dc == "" || strings.ContainsAny(dc, "/ \t\n") {
			return fmt.Errorf("%w: datacenter name %q among the others must be non-empty, without '/' or spaces", ErrConfig, dc)
		}
		if err := r.validate(); err != nil {
			return fmt.Errorf("datacenter %s: %w", dc, err)
		}
		if r.overlaps(c.Range) {
			return fmt.Errorf("%w: datacenter %s's range %s overlaps %s's %s", ErrConfig, dc, r, c.Datacenter, c.Range)
		}
		for _, prev := range others[:i] {
			if r.overlaps(c.Others[prev]) {
				return fmt.Errorf("%w: datacenter %s's range %s overlaps datacenter %s's %s", ErrConfig, dc, r, prev, c.Others[prev])
			}
		}
	}
	if err := c.leaseConfig().Validate(); err != nil {
		return fmt.Errorf("%w: %s", ErrConfig, strings.TrimPrefix(err.Error(), lease.ErrConfig.Error()+": "))
	}
	switch {
	case c.Window < 4*mig.Tick:
		return fmt.Errorf("%w: watermark window %v is shorter than 4 ticks", ErrConfig, c.Window)
	case c.Borrow < 0 || c.Borrow >= c.Window/2:
		return fmt.Errorf("%w: borrow %v must be at least 0 and less than half the window (%v)", ErrConfig, c.Borrow, c.Window)
	case c.StartTimeout < 0:
		return fmt.Errorf("%w: start timeout %v is negative", ErrConfig, c.StartTimeout)
	}
	return nil
}
