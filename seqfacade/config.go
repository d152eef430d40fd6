package seqfacade

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/migsvc/mig/internal/lease"
)

// Defaults of Config.
const (
	DefaultPrefix           = "/mig"
	DefaultSectionSize      = 100_000
	DefaultGroupSize        = 128
	DefaultUIDLimit         = 1 << 32
	DefaultStep             = 10_000
	DefaultPrefetchFraction = 0.5
	// DefaultMaxBatch is the most uids one NextBatch call may name by
	// default: a large group chat's membership.
	DefaultMaxBatch = 1000
)

// Defaults of Config when Routed is set: a killed node's groups are
// served again by the others a little over DefaultRoutedTTL +
// the activation delay (TTL + margin) after it stopped renewing, about
// 4.5 s (TestKillUnderLoad reports the figure measured).
const (
	DefaultRoutedTTL            = 2 * time.Second
	DefaultRoutedMargin         = 500 * time.Millisecond
	DefaultRoutedRequestTimeout = 500 * time.Millisecond
	// DefaultRebalanceInterval spaces the arbiter's rebalancing rounds.
	DefaultRebalanceInterval = 10 * time.Second
	// DefaultMaxMoves bounds the groups one rebalancing round moves
	// between live nodes: each moved group answers ErrUnavailable for
	// about the activation delay.
	DefaultMaxMoves = 16
)

// Limits on Config.
const (
	// MaxSeq is the highest sequence ever handed out: int64's maximum, so
	// that no consumer that stores sequences as int64 sees a negative one.
	MaxSeq = math.MaxInt64
	// MaxStep bounds Config.Step.
	MaxStep = 1 << 32
	// MaxGroupSize bounds Config.GroupSize; a group's value is 8 bytes a
	// section, and etcd refuses requests over 1.5 MiB.
	MaxGroupSize = 4096
	// MaxSections bounds the number of sections (uid limit / section
	// size): every node keeps a pointer slot per section.
	MaxSections = 1 << 22
	// MaxMaxBatch bounds Config.MaxBatch.
	MaxMaxBatch = 100_000
)

// Config configures a Node. The zero value of every field means its
// default.
//
// SectionSize, GroupSize and UIDLimit fix where every uid's max_seq is
// persisted; they are recorded in etcd by the first node and every later
// Start with other values is refused (ErrMismatch). Step is recorded for
// operators but may change between starts: every extension persists
// max_seq + the current step over whatever is persisted, so a new step
// changes how far ahead a node reserves, never where it starts.
type Config struct {
	// NodeName names this node in etcd (<Prefix>/seq/nodes/<NodeName>);
	// default the host name. Two live processes must not share a name.
	NodeName string
	// Prefix is the etcd key prefix (default "/mig").
	Prefix string
	// SectionSize is the number of consecutive uids that share one
	// persisted max_seq (default 100,000).
	SectionSize uint64
	// GroupSize is the number of consecutive sections persisted in one
	// etcd key, and the unit of ownership (default 128).
	GroupSize int
	// UIDLimit bounds uids: valid uids are 1..UIDLimit-1 (default 2^32).
	UIDLimit uint64
	// Step is how far one extension raises a section's max_seq (default
	// 10,000). At most MaxStep.
	Step uint64
	// PrefetchFraction is the fraction of a step a section may use before
	// its next extension starts in the background (default 0.5; 1 starts
	// it only when the step is used up). In (0, 1].
	PrefetchFraction float64
	// MaxBatch is the most uids one NextBatch call may name (default
	// DefaultMaxBatch, at most MaxMaxBatch).
	MaxBatch int
	// Lease configures the node's etcd lease and self-fencing deadline.
	Lease lease.Config
	// ActivationDelay is how long a node waits after registering before it
	// serves, so that any previous holder has surely fenced itself
	// (default: the lease TTL rounded up to seconds, plus the margin).
	// Shorter values are for tests.
	ActivationDelay time.Duration
	// RequestTimeout bounds every max_seq read and write (default: the
	// lease's request timeout). Calls are also cut at the lease deadline.
	RequestTimeout time.Duration
	// Logger receives registrations, fences, unloads and etcd failures;
	// nil discards.
	Logger *slog.Logger

	// Routed spreads the groups over every node that runs with it, by a
	// routing table that an elected arbiter writes to etcd
	// (docs/seq-failover.md), instead of one node serving them all. Its
	// zero-valued lease fields default to DefaultRoutedTTL,
	// DefaultRoutedMargin and DefaultRoutedRequestTimeout, and the
	// activation delay must be at least the lease TTL. The fields below
	// matter only with Routed.
	Routed bool
	// Address is where clients reach this node (host:port), published in
	// its registration and in every routing table. A node without one
	// still serves, but clients cannot be sent to it.
	Address string
	// Datacenter names this node's datacenter, published in its
	// registration.
	Datacenter string
	// Weight is this node's relative capacity (default 1): a node of
	// weight 2 is given about twice the groups of a node of weight 1.
	Weight float64
	// RebalanceInterval spaces the arbiter's rebalancing rounds (default
	// DefaultRebalanceInterval). A dead node's groups are reassigned at
	// once, whatever the interval.
	RebalanceInterval time.Duration
	// MaxMoves bounds the groups one rebalancing round moves between live
	// nodes (default DefaultMaxMoves; negative: never rebalance).
	MaxMoves int
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.NodeName == "" {
		c.NodeName, _ = os.Hostname()
		if c.NodeName == "" {
			c.NodeName = "mig"
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.SectionSize == 0 {
		c.SectionSize = DefaultSectionSize
	}
	if c.GroupSize == 0 {
		c.GroupSize = DefaultGroupSize
	}
	if c.UIDLimit == 0 {
		c.UIDLimit = DefaultUIDLimit
	}
	if c.Step == 0 {
		c.Step = DefaultStep
	}
	if c.PrefetchFraction == 0 {
		c.PrefetchFraction = DefaultPrefetchFraction
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Routed {
		if c.Lease.TTL == 0 {
			c.Lease.TTL = DefaultRoutedTTL
		}
		if c.Lease.Margin == 0 {
			c.Lease.Margin = DefaultRoutedMargin
		}
		if c.Lease.RequestTimeout == 0 {
			c.Lease.RequestTimeout = DefaultRoutedRequestTimeout
		}
		if c.Weight == 0 {
			c.Weight = 1
		}
		if c.RebalanceInterval == 0 {
			c.RebalanceInterval = DefaultRebalanceInterval
		}
		if c.MaxMoves == 0 {
			c.MaxMoves = DefaultMaxMoves
		}
	}
	if c.Lease.TTL == 0 {
		c.Lease.TTL = lease.DefaultTTL
	}
	if c.Lease.Margin == 0 {
		c.Lease.Margin = lease.DefaultMargin
	}
	if c.Lease.RequestTimeout == 0 {
		c.Lease.RequestTimeout = lease.DefaultRequestTimeout
	}
	if c.ActivationDelay == 0 {
		c.ActivationDelay = c.grantedTTL() + c.Lease.Margin
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = c.Lease.RequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports everything wrong with c, one error per problem joined
// together; each wraps ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if strings.ContainsAny(c.NodeName, "/ \t\n") {
		bad("node name %q must not contain '/' or spaces", c.NodeName)
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		bad("key prefix %q must start with '/'", c.Prefix)
	}
	if c.UIDLimit < 2 {
		bad("uid limit %d leaves no valid uid (uids are 1..limit-1)", c.UIDLimit)
	}
	if c.SectionSize > c.UIDLimit {
		bad("section size %d is larger than the uid limit %d", c.SectionSize, c.UIDLimit)
	} else if sectionCount(c.UIDLimit, c.SectionSize) > MaxSections {
		n := c.UIDLimit/c.SectionSize + min(1, c.UIDLimit%c.SectionSize)
		bad("uid limit %d in sections of %d makes %d sections, more than %d", c.UIDLimit, c.SectionSize, n, MaxSections)
	}
	if c.GroupSize < 1 || c.GroupSize > MaxGroupSize {
		bad("group size %d must be between 1 and %d sections", c.GroupSize, MaxGroupSize)
	}
	if c.Step > MaxStep {
		bad("step %d is more than %d", c.Step, uint64(MaxStep))
	}
	if !(c.PrefetchFraction > 0 && c.PrefetchFraction <= 1) {
		bad("prefetch fraction %v must be in (0, 1]", c.PrefetchFraction)
	}
	if c.MaxBatch < 1 || c.MaxBatch > MaxMaxBatch {
		bad("max batch %d must be between 1 and %d uids", c.MaxBatch, MaxMaxBatch)
	}
	if err := c.Lease.Validate(); err != nil {
		bad("%v", err)
	}
	if c.ActivationDelay < 0 {
		bad("activation delay %v is negative", c.ActivationDelay)
	}
	if c.RequestTimeout < 0 {
		bad("request timeout %v is negative", c.RequestTimeout)
	}
	if c.Routed {
		// HAZARD: a gaining node must wait out a losing node's right to
		// serve, which lasts up to the lease TTL after its last
		// confirmation (docs/seq-failover.md, rule 2).
		if ttl := c.grantedTTL(); c.ActivationDelay < ttl {
			bad("activation delay %v is shorter than the lease TTL %v (as etcd grants it, in whole seconds): a node could serve a group before its previous owner has stopped", c.ActivationDelay, ttl)
		}
		if strings.ContainsAny(c.Address, " \t\n") {
			bad("address %q must not contain spaces", c.Address)
		}
		if strings.ContainsAny(c.Datacenter, "/ \t\n") {
			bad("datacenter %q must not contain '/' or spaces", c.Datacenter)
		}
		if !(c.Weight > 0 && c.Weight <= 1e6) {
			bad("weight %v must be in (0, 1e6]", c.Weight)
		}
		if c.RebalanceInterval < 0 {
			bad("rebalance interval %v is negative", c.RebalanceInterval)
		}
	}
	return errors.Join(errs...)
}

// grantedTTL is the lease TTL as etcd grants it: rounded up to whole
// seconds.
func (c Config) grantedTTL() time.Duration {
	return (c.Lease.TTL + time.Second - 1).Truncate(time.Second)
}

// reserve is how many values of a step are left when the next extension
// starts: (1 - PrefetchFraction) * Step.
func (c Config) reserve() uint64 {
	return uint64(math.Floor((1 - c.PrefetchFraction) * float64(c.Step)))
}
