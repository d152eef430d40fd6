package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
)

// Errors returned by Err once a lease has ended.
var (
	// ErrExpired means the deadline passed without an acknowledged renewal.
	ErrExpired = errors.New("lease: deadline passed without an acknowledged renewal")
	// ErrGone means etcd answered that the lease no longer exists.
	ErrGone = errors.New("lease: etcd says the lease is gone")
	// ErrClosed means Close ended the lease.
	ErrClosed = errors.New("lease: closed")
	// ErrConfig is wrapped by every configuration error.
	ErrConfig = errors.New("lease: invalid configuration")
)

// Defaults of Config.
const (
	DefaultTTL            = 5 * time.Second
	DefaultMargin         = time.Second
	DefaultRequestTimeout = time.Second
)

// Config configures a Lease. Zero values mean the defaults.
type Config struct {
	// TTL is requested from etcd (default 5s, at least 2s); the granted
	// TTL is what deadlines use.
	TTL time.Duration
	// Margin is taken off every deadline (default 1s): clock-rate error
	// between this host and etcd's leader, and the time the holder needs
	// to act on the deadline. At least 0, less than half the TTL.
	Margin time.Duration
	// RequestTimeout bounds every etcd call (default 1s, at most TTL/3).
	RequestTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Margin == 0 {
		c.Margin = DefaultMargin
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	return c
}

// Validate reports the first thing wrong with c; errors wrap ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.TTL < 2*time.Second:
		return fmt.Errorf("%w: lease TTL %v is below etcd's minimum of 2s", ErrConfig, c.TTL)
	case c.Margin < 0 || c.Margin >= c.TTL/2:
		return fmt.Errorf("%w: lease margin %v must be at least 0 and less than half the TTL (%v)", ErrConfig, c.Margin, c.TTL)
	case c.RequestTimeout <= 0 || c.RequestTimeout > c.TTL/3:
		return fmt.Errorf("%w: etcd request timeout %v must be positive and at most a third of the TTL (%v)", ErrConfig, c.RequestTimeout, c.TTL)
	}
	return nil
}

// Lease is an etcd lease kept alive by one goroutine, with a self-fencing
// deadline. Safe for concurrent use.
type Lease struct {
	cfg Config
	cli *clientv3.Client
	src clock.Source
	id  clientv3.LeaseID
	ttl time.Duration // granted

	deadline *clock.Deadline // ended just before done closes
	done     chan struct{}
	endOnce  sync.Once
	err      atomic.Pointer[error]

	renewals, failures atomic.Uint64

	// renewed holds the last acknowledged renewal (the grant counts as
	// the first) and a channel closed at the next one.
	renewed struct {
		sync.Mutex
		last Renewal
		next chan struct{}
	}

	cancel   context.CancelFunc
	loopDone chan struct{}
}

// Grant asks etcd for a lease and starts keeping it alive. The first
// deadline counts from before the request was sent. It returns an error
// wrapping ErrConfig for a bad cfg, or etcd's error (within
// cfg.RequestTimeout or ctx's deadline).
func Grant(ctx context.Context, cli *clientv3.Client, src clock.Source, cfg Config) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sent := src.Mono()
	cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	g, err := cli.Grant(cctx, int64((cfg.TTL+time.Second-1)/time.Second))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("granting a lease: %w", err)
	}
	return keep(ctx, cli, src, cfg, g.ID, time.Duration(g.TTL)*time.Second, sent), nil
}

// Resume keeps alive a lease that etcd may still hold though its holder's
// deadline passed (an election without a leader longer than the margin:
// renewals went unanswered, while the new leader lengthens every lease).
// It renews id once: acknowledged with a TTL, etcd held the lease when it
// answered (an expired or revoked lease is never renewed again), and it
// is kept alive as if just granted, its deadline counting from that
// renewal's send. It returns an error wrapping ErrGone when etcd no
// longer knows id, or etcd's error.
//
// Whatever the old deadline fenced stopped at it; Resume gives no right
// that held in between back. An acknowledgement is not proof that what
// the lease carries is still there (a keep-alive may be answered while a
// revoke is being applied): a holder checks its keys before relying on
// them again, as a sequence node's confirmation does.
func Resume(ctx context.Context, cli *clientv3.Client, src clock.Source, cfg Config, id clientv3.LeaseID) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sent := src.Mono()
	cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	r, err := cli.KeepAliveOnce(cctx, id)
	cancel()
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound), err == nil && r.TTL <= 0:
		return nil, fmt.Errorf("resuming lease %x: %w", int64(id), ErrGone)
	case err != nil:
		return nil, fmt.Errorf("resuming lease %x: %w", int64(id), err)
	}
	return keep(ctx, cli, src, cfg, id, time.Duration(r.TTL)*time.Second, sent), nil
}

// keep starts keeping lease id alive, last renewed (or granted) with ttl
// by a request sent at sent.
func keep(ctx context.Context, cli *clientv3.Client, src clock.Source, cfg Config, id clientv3.LeaseID, ttl, sent time.Duration) *Lease {
	l := &Lease{
		cfg:      cfg,
		cli:      cli,
		src:      src,
		id:       id,
		ttl:      ttl,
		done:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	l.deadline = clock.NewDeadline(src, sent+l.ttl-cfg.Margin)
	l.renewed.last = Renewal{Sent: sent, TTL: l.ttl}
	l.renewed.next = make(chan struct{})
	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = lcancel
	go l.run(lctx, sent)
	return l
}

// ID returns the etcd lease ID.
func (l *Lease) ID() clientv3.LeaseID { return l.id }

// TTL returns the TTL etcd granted.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Done is closed when the lease has ended: its deadline passed, etcd said
// it is gone, or Close was called. Err says which.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err returns nil while the lease is live, then ErrExpired, ErrGone or
// ErrClosed.
func (l *Lease) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Deadline returns the monotonic time (of the Source given to Grant) at
// which the lease must be treated as lost.
func (l *Lease) Deadline() time.Duration { return l.deadline.At() }

// Fence returns the deadline itself, for a hot path that checks it on
// every call with [clock.Deadline.Live] (the same answer as Valid). Only
// the Lease extends or ends it: callers must not.
func (l *Lease) Fence() *clock.Deadline { return l.deadline }

// Headroom returns the time left before the deadline: negative once past.
func (l *Lease) Headroom() time.Duration { return l.Deadline() - l.src.Mono() }

// Valid reports, reading the clock now, whether the lease is surely still
// held: it has not ended and its deadline has not passed. Unlike Done it
// does not depend on the renewal goroutine having run in time.
func (l *Lease) Valid() bool { return l.deadline.Live() }

// Renewal is an acknowledged renewal of a lease; the grant counts as the
// first. A plain value.
type Renewal struct {
	// Sent is the monotonic time (of the Source given to Grant) just
	// before the request went out: etcd cannot expire the lease before
	// Sent + TTL on a clock that runs at the rate of this one.
	Sent time.Duration
	// TTL is the TTL etcd answered with.
	TTL time.Duration
}

// LastRenewal returns the last acknowledged renewal and a channel that is
// closed when a later one is acknowledged. It is how a holder ties a read
// of its own to a renewal: a linearizable read sent after LastRenewal
// returned was processed after r.Sent, so what it shows held at some
// moment after r.Sent (docs/seq-failover.md). The channel is not closed
// when the lease ends; wait on Done as well.
func (l *Lease) LastRenewal() (r Renewal, next <-chan struct{}) {
	l.renewed.Lock()
	defer l.renewed.Unlock()
	return l.renewed.last, l.renewed.next
}

// Stats are a lease's counters.
type Stats struct{ Renewals, RenewalFailures uint64 }

// Stats returns the lease's counters.
func (l *Lease) Stats() Stats {
	return Stats{Renewals: l.renewals.Load(), RenewalFailures: l.failures.Load()}
}

// CallContext returns a context for one etcd call made under the lease: it
// ends at the request timeout or at the lease's deadline, whichever is
// sooner, so nothing done on the lease's behalf outlives it.
func (l *Lease) CallContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(0, min(l.cfg.RequestTimeout, l.Headroom())))
}

func (l *Lease) end(err error) {
	l.endOnce.Do(func() {
		l.err.Store(&err)
		l.deadline.End()
		close(l.done)
	})
}

// run renews every quarter TTL and ends the lease at its deadline.
func (l *Lease) run(ctx context.Context, granted time.Duration) {
	defer close(l.loopDone)
	every := l.ttl / 4
	next := granted + every
	for {
		now := l.src.Mono()
		deadline := l.Deadline()
		if now >= deadline {
			l.end(ErrExpired)
			return
		}
		if now >= next {
			ok, gone := l.renew(ctx, now, deadline)
			switch {
			case gone:
				l.end(ErrGone)
				return
			case ok:
				next = now + every
			default:
				next = l.src.Mono() + min(every/4, 250*time.Millisecond)
			}
			continue
		}
		wake := min(deadline, next)
		select {
		case <-ctx.Done():
			return
		case <-l.src.After(wake - now):
		}
	}
}

// renew sends one keep-alive sent at the monotonic time sent. The call
// ends by the current deadline, so a hung call cannot delay the fence.
func (l *Lease) renew(ctx context.Context, start, deadline time.Duration) (ok, gone bool) {
	cctx, cancel := context.WithTimeout(ctx, min(l.cfg.RequestTimeout, deadline-start))
	type ack struct {
		sent time.Duration
		r    *clientv3.LeaseKeepAliveResponse
	}
	a, err := Hedged(cctx, l.src, l.cfg.RequestTimeout/3, func(ctx context.Context) (ack, error) {
		sent := l.src.Mono()
		r, err := l.cli.KeepAliveOnce(ctx, l.id)
		return ack{sent, r}, err
	})
	cancel()
	sent, r := a.sent, a.r
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return false, true
		}
		l.failures.Add(1)
		return false, false
	}
	l.renewals.Add(1)
	// HAZARD: the deadline counts from the send, never from the answer.
	// Extend keeps the later deadline.
	l.deadline.Extend(sent + time.Duration(r.TTL)*time.Second - l.cfg.Margin)
	l.renewed.Lock()
	l.renewed.last = Renewal{Sent: sent, TTL: time.Duration(r.TTL) * time.Second}
	close(l.renewed.next)
	l.renewed.next = make(chan struct{})
	l.renewed.Unlock()
	return true, false
}

// Close stops renewing, ends the lease and revokes it in etcd so whatever
// it carries is freed at once. It is idempotent and returns the revoke's
// error (nil if the lease had already ended for another reason and etcd
// no longer knows it).
func (l *Lease) Close(ctx context.Context) error {
	l.cancel()
	<-l.loopDone
	l.end(ErrClosed)
	cctx, cancel := context.WithTimeout(ctx, l.cfg.RequestTimeout)
	defer cancel()
	_, err := l.cli.Revoke(cctx, l.id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		err = nil
	}
	return err
}
