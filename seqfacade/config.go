package seqfacade

import (
	"context"
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

	// DefaultTTL is the registration lease's TTL: how long a node may be
	// silent before etcd deletes its registration and the arbiter gives
	// its groups to others. etcd raises it to 1.5 election timeouts when
	// that is longer (a cluster across sites); the granted TTL is used.
	DefaultTTL = 2 * time.Second
	// DefaultMargin is taken off every right to serve, for the rates of
	// two hosts' clocks (20% of the activation delay: two hosts slewed
	// the opposite ways by chrony's fastest 8.3% differ by 15.4%) and the
	// time to act.
	DefaultMargin = 200 * time.Millisecond
	// DefaultRequestTimeout bounds every etcd call of a node.
	DefaultRequestTimeout = 300 * time.Millisecond
	// DefaultActivationDelay is how long a node waits, after it first
	// sees a group given to it, before serving it without its previous
	// owner's release; it is also how long each confirmation lets a node
	// serve (docs/seq-failover.md).
	DefaultActivationDelay = time.Second

	// DefaultRebalanceInterval spaces the arbiter's planned rounds (homes,
	// weights and load). A dead or draining node's groups move at once,
	// whatever the interval.
	DefaultRebalanceInterval = 10 * time.Second
	// DefaultMaxMoves bounds the groups one round moves between live
	// nodes (towards their home, or to even the load).
	DefaultMaxMoves = 16
	// DefaultTolerance is the band around the mean load, per unit of
	// weight, within which a node's load counts as balanced.
	DefaultTolerance = 0.25
	// DefaultEvidenceRounds is how many rounds in a row a datacenter's
	// load must be out of the band before groups move for it.
	DefaultEvidenceRounds = 3
	// DefaultCooldown is how long a group that moved is not moved again
	// for load.
	DefaultCooldown = 2 * time.Minute
	// DefaultMinLoad is the calls a second a datacenter must serve before
	// its load is balanced at all: below it, groups are spread by weight.
	DefaultMinLoad = 100
)

// Limits on Config.
const (
	// MaxSeq is the highest sequence ever handed out: int64's maximum, so
	// that no consumer that stores sequences as int64 sees a negative one.
	MaxSeq = math.MaxInt64
	// MaxStep bounds Config.Step, and the step a busy section grows to.
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
// SectionSize, GroupSize, UIDLimit, Homes and HomeOnly fix where every
// uid's max_seq is persisted and who may serve it; they are recorded in
// etcd by the first node, and every later Start with other values is
// refused (ErrMismatch). Step is recorded for operators but may change
// between starts: every extension persists max_seq + the current step
// over whatever is persisted.
type Config struct {
	// NodeName names this node in etcd (<Prefix>/seq/nodes/<NodeName>);
	// default the host name. Two live processes cannot share a name (the
	// second waits for the first's registration to go).
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
	// 10,000), at least: a section that needs extending again within
	// StepPeriod doubles its step, up to MaxStep, so a busy uid costs a
	// write every few seconds however fast it goes.
	Step uint64
	// PrefetchFraction is the fraction of a step a section may use before
	// its next extension starts in the background (default 0.5; 1 starts
	// it only when the step is used up). In (0, 1].
	PrefetchFraction float64
	// MaxBatch is the most uids one NextBatch call may name (default
	// DefaultMaxBatch, at most MaxMaxBatch).
	MaxBatch int

	// Lease configures the node's registration lease (defaults
	// DefaultTTL, a quarter of the TTL as its margin,
	// DefaultRequestTimeout). Its TTL only sets how soon a dead node's
	// groups move: rights to serve do not come from the lease.
	Lease lease.Config
	// Margin is taken off every right to serve (default DefaultMargin),
	// for the clock rates of two hosts: at least a sixth of
	// ActivationDelay.
	Margin time.Duration
	// ActivationDelay is how long each confirmation lets the node serve
	// its groups, and how long a node waits after first seeing a group
	// given to it before serving it when its previous owner has not
	// released it (default DefaultActivationDelay). A dead node's groups
	// are served again about the lease TTL plus this after it died.
	ActivationDelay time.Duration
	// ConfirmInterval spaces the confirmations of the routing table
	// (default a quarter of the activation delay). The right to serve,
	// ActivationDelay - Margin, must outlast an interval plus a request
	// timeout, or a healthy node would stop serving between two.
	ConfirmInterval time.Duration
	// RequestTimeout bounds every max_seq read and write (default: the
	// lease's request timeout). Calls are also cut at the claim deadline.
	RequestTimeout time.Duration
	// StartTimeout bounds how long Start tries to record or check the
	// configuration in etcd (default 10 s).
	StartTimeout time.Duration
	// Logger receives registrations, moves, fences and etcd failures;
	// nil discards.
	Logger *slog.Logger

	// Address is where clients reach this node (host:port), published in
	// its registration and in every routing table. A node without one
	// still serves, but clients cannot be sent to it.
	Address string
	// Datacenter names this node's datacenter, published in its
	// registration: groups live on the nodes of their home datacenter.
	Datacenter string
	// Weight is this node's relative capacity (default 1): a node of
	// weight 2 is given about twice the groups, or load, of a node of
	// weight 1.
	Weight float64
	// Homes gives each group a home datacenter and an ordered list of
	// fallbacks (see Homes). None: every group may live on any node.
	Homes Homes
	// HomeOnly makes the store this node uses one datacenter's own (a
	// deployment without one sequence store across datacenters): the node
	// serves only the groups whose home is its Datacenter and refuses the
	// others with a *NotHomeError naming their datacenter. It needs Homes
	// and a Datacenter.
	HomeOnly bool

	// RebalanceInterval spaces the arbiter's planned rounds (default
	// DefaultRebalanceInterval).
	RebalanceInterval time.Duration
	// MaxMoves bounds the groups one planned round moves between live
	// nodes (default DefaultMaxMoves; negative: never move a group away
	// from a live node that is not draining).
	MaxMoves int
	// Tolerance is the band, as a fraction of the mean load per unit of
	// weight, within which nodes count as balanced (default
	// DefaultTolerance).
	Tolerance float64
	// EvidenceRounds is how many rounds in a row load must be out of the
	// band before it is evened (default DefaultEvidenceRounds).
	EvidenceRounds int
	// Cooldown is how long a group that moved is not moved again for load
	// (default DefaultCooldown).
	Cooldown time.Duration
	// MinLoad is the calls a second below which a datacenter's load is
	// not balanced (default DefaultMinLoad).
	MinLoad float64
	// StepPeriod: a section extended twice within it doubles its step
	// (default 10 s).
	StepPeriod time.Duration

	// HandOff asks the node at addr (a routing table's address) for the
	// releases of groups (Node.HandOff on that node): a node given a
	// group by a table that moved it from another live node asks it so,
	// and serves at once on its answer (handoff.go). rpc.PeerHandOff
	// makes one. Nil: releases are read from etcd only.
	HandOff func(ctx context.Context, addr string, groups []HandOffGroup) ([]HandedOff, error)
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
	if c.Lease.TTL == 0 {
		c.Lease.TTL = DefaultTTL
	}
	if c.Lease.Margin == 0 {
		c.Lease.Margin = c.Lease.TTL / 4
	}
	if c.Margin == 0 {
		c.Margin = DefaultMargin
	}
	if c.Lease.RequestTimeout == 0 {
		c.Lease.RequestTimeout = DefaultRequestTimeout
	}
	if c.ActivationDelay == 0 {
		c.ActivationDelay = DefaultActivationDelay
	}
	if c.ConfirmInterval == 0 {
		c.ConfirmInterval = c.ActivationDelay / 4
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = c.Lease.RequestTimeout
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
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
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.EvidenceRounds == 0 {
		c.EvidenceRounds = DefaultEvidenceRounds
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.MinLoad == 0 {
		c.MinLoad = DefaultMinLoad
	}
	if c.StepPeriod == 0 {
		c.StepPeriod = 10 * time.Second
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
	if strings.ContainsAny(c.NodeName, "/ \t\n") || c.NodeName == "" {
		bad("node name %q must not be empty or contain '/' or spaces", c.NodeName)
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		bad("key prefix %q must start with '/'", c.Prefix)
	}
	layoutOK := true
	if c.UIDLimit < 2 {
		bad("uid limit %d leaves no valid uid (uids are 1..limit-1)", c.UIDLimit)
		layoutOK = false
	}
	if c.SectionSize > c.UIDLimit {
		bad("section size %d is larger than the uid limit %d", c.SectionSize, c.UIDLimit)
		layoutOK = false
	} else if c.SectionSize > 1<<32 {
		// A uid's index in its section is 32 bits (counters.go).
		bad("section size %d is more than 2^32 uids", c.SectionSize)
		layoutOK = false
	} else if sectionCount(c.UIDLimit, c.SectionSize) > MaxSections {
		n := c.UIDLimit/c.SectionSize + min(1, c.UIDLimit%c.SectionSize)
		bad("uid limit %d in sections of %d makes %d sections, more than %d", c.UIDLimit, c.SectionSize, n, MaxSections)
		layoutOK = false
	}
	if c.GroupSize < 1 || c.GroupSize > MaxGroupSize {
		bad("group size %d must be between 1 and %d sections", c.GroupSize, MaxGroupSize)
		layoutOK = false
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
	if c.RequestTimeout <= 0 {
		bad("request timeout %v must be positive", c.RequestTimeout)
	}
	// HAZARD: each confirmation lets a node serve for ActivationDelay -
	// Margin after it was sent; a node that gains a group waits
	// ActivationDelay. The margin is what absorbs two hosts' clock rates
	// (docs/seq-failover.md), so it must be a real part of the delay.
	claim := c.ActivationDelay - c.Margin
	switch {
	case c.ActivationDelay <= 0:
		bad("activation delay %v must be positive", c.ActivationDelay)
	case c.Margin <= 0 || c.Margin*6 < c.ActivationDelay:
		// Two hosts slewing in opposite directions at chrony's maximum
		// (8.3%) differ by 2s/(1+s), about 15.4%.
		bad("margin %v must be at least a sixth of the activation delay %v: it absorbs the clock-rate difference of two hosts, up to 15%% when NTP daemons slew at their fastest", c.Margin, c.ActivationDelay)
	case c.ConfirmInterval <= 0:
		bad("confirm interval %v must be positive", c.ConfirmInterval)
	case claim <= c.ConfirmInterval+c.Lease.RequestTimeout:
		bad("a confirmation lets the node serve for %v (activation delay %v - margin %v), which does not outlast the confirm interval %v plus a request timeout %v: the node would stop serving between confirmations",
			claim, c.ActivationDelay, c.Margin, c.ConfirmInterval, c.Lease.RequestTimeout)
	}
	if strings.ContainsAny(c.Address, " \t\n") {
		bad("address %q must not contain spaces", c.Address)
	}
	if err := checkName("datacenter", c.Datacenter); c.Datacenter != "" && err != nil {
		bad("%v", err)
	}
	if !(c.Weight > 0 && c.Weight <= 1e6) {
		bad("weight %v must be in (0, 1e6]", c.Weight)
	}
	if c.RebalanceInterval < 0 {
		bad("rebalance interval %v is negative", c.RebalanceInterval)
	}
	if !(c.Tolerance > 0 && c.Tolerance < 10) {
		bad("load tolerance %v must be in (0, 10)", c.Tolerance)
	}
	if c.EvidenceRounds < 1 {
		bad("evidence rounds %d must be at least 1", c.EvidenceRounds)
	}
	if c.Cooldown < 0 {
		bad("cooldown %v is negative", c.Cooldown)
	}
	if !(c.MinLoad >= 0) {
		bad("minimum load %v must not be negative", c.MinLoad)
	}
	if c.StepPeriod < 0 {
		bad("step period %v is negative", c.StepPeriod)
	}
	if layoutOK {
		if err := c.Homes.check(newLayout(c).groups); err != nil {
			bad("%v", err)
		}
	}
	if c.HomeOnly {
		switch {
		case c.Datacenter == "":
			bad("a datacenter's own store (home only) needs the node's datacenter")
		case len(c.Homes) == 0:
			bad("a datacenter's own store (home only) must be told which groups it owns: give the homes")
		case layoutOK && !c.Homes.names(c.Datacenter):
			bad("no group has its home in datacenter %s, the node's", c.Datacenter)
		}
	}
	return errors.Join(errs...)
}

// claimLength is how long one confirmation lets the node serve, after
// the confirmation was sent.
func (c Config) claimLength() time.Duration { return c.ActivationDelay - c.Margin }

// reserve is how many values of a step are left when the next extension
// starts: (1 - PrefetchFraction) * step.
func (c Config) reserve(step uint64) uint64 {
	return uint64(math.Floor((1 - c.PrefetchFraction) * float64(step)))
}

// checkName refuses a datacenter or node name that cannot be a key part.
func checkName(what, s string) error {
	if s == "" || strings.ContainsAny(s, "/=,>: \t\n") {
		return fmt.Errorf("%s name %q must not be empty or contain '/', '=', ',', '>', ':' or spaces", what, s)
	}
	return nil
}
