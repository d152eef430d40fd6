package ntp

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	beevik "github.com/beevik/ntp"

	"github.com/migsvc/mig/clock"
)

// Errors of this package. ErrQuery and ErrInvalid are kept in [Status],
// each wrapped with the server and the cause; test for them with
// errors.Is (the cause, such as beevik.ErrKissOfDeath, matches too).
var (
	// ErrUnsafe is wrapped by [Monitor.CheckClock]'s error while the wall
	// clock is further from NTP time than MaxOffset.
	ErrUnsafe = errors.New("ntp: wall clock too far from NTP time")
	// ErrQuery means a server did not answer, or answered something that
	// is not an NTP response to our request.
	ErrQuery = errors.New("ntp: query failed")
	// ErrInvalid means a server answered but its response is unfit for
	// synchronization (kiss of death, unsynchronized, stale, ...).
	ErrInvalid = errors.New("ntp: response invalid")
	// errMonitorClosed ends a query started after Close.
	errMonitorClosed = errors.New("ntp: monitor closed")
	// errStepDuringRound marks the answers of a round during which the
	// wall clock stepped.
	errStepDuringRound = errors.New("the wall clock stepped during the round; its offset is void")
)

// Defaults of [Config], used where a field is zero.
const (
	DefaultInterval  = 32 * time.Second
	DefaultTimeout   = 5 * time.Second
	DefaultMaxOffset = 500 * time.Millisecond
	DefaultMaxLead   = 20 * time.Second
	// DefaultMaxSlewRate is above the fastest slew of Linux (adjtimex
	// moves the tick by up to 10%) and of chrony (maxslewrate 83,333 ppm),
	// measured on the monotonic clock that the slew slows too (11.1% and
	// 9.1%).
	DefaultMaxSlewRate = 0.125

	// minStepRound is the least time between the start of a round and one
	// run early for a step of the ID clock's wall clock: a clock that
	// steps over and over must not turn the check into a flood, which
	// public servers answer with a kiss of death.
	minStepRound = 2 * time.Second
)

// Config sets what a [Monitor] queries and when it calls the clock
// unsafe. The zero value means the defaults, with no servers: a disabled
// monitor. Start copies it, so it is safe for concurrent use as long as
// nobody writes to it.
type Config struct {
	// Servers are queried every round, each as "host" or "host:port"
	// (port 123 when absent). None disables the monitor.
	Servers []string
	// Interval is the wait between rounds. Zero means DefaultInterval.
	Interval time.Duration
	// Timeout bounds each query. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxOffset is the largest |offset| of the wall clock from NTP time at
	// which the clock is still safe. Zero means DefaultMaxOffset.
	MaxOffset time.Duration
	// IDClock, when set, is the ID clock whose steps forward the monitor
	// confirms (its clock.SlewConfig.HoldForward is set). The monitor then
	// measures the wall clock the ID clock follows (clock.Slewing.Basis)
	// rather than the source's, runs a round as soon as the ID clock
	// signals a step (at most one every two seconds), and releases a
	// held step (clock.Slewing.Settle) once a round's best answer puts
	// the stepped wall clock within MaxOffset of NTP time, and nearer it
	// than the held one. A step that NTP puts further is a wrong one: it
	// stays held, the ID clock goes on with monotonic time, and the check
	// judges that time. Until a server answers, a step stays held. A
	// round during which the wall clock stepped decides nothing.
	IDClock *clock.Slewing
	// MaxLead is how far the ID clock itself may be ahead of NTP time
	// beyond MaxOffset, with Config.IDClock: further, the clock is unsafe,
	// whatever the wall clock says. The ID clock runs ahead of the wall
	// clock after a step back (it never goes back) and when it starts
	// above the watermark a crashed predecessor persisted (up to its
	// watermark window ahead); `mig serve` allows twice the window. Zero
	// means DefaultMaxLead.
	MaxLead time.Duration
	// MaxSlewRate is the fastest the host's NTP daemon slews the wall
	// clock, in seconds a second. A held step that NTP finds wrong, with
	// the wall clock followed behind NTP time, is being slewed away (on
	// Linux a slew moves the monotonic clock too, so the ID clock cannot
	// see it): when two rounds in a row (the second two seconds after the
	// first) find the clock followed behind, as much of the step as both
	// found is let through, but no more than MaxSlewRate of the time
	// since the answer before them, so that a wrong answer releases
	// nothing, and a server wrong all along no more than a slew would.
	// Zero means DefaultMaxSlewRate; it must be in [0, 1].
	MaxSlewRate float64
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxOffset == 0 {
		c.MaxOffset = DefaultMaxOffset
	}
	if c.MaxLead == 0 {
		c.MaxLead = DefaultMaxLead
	}
	if c.MaxSlewRate == 0 {
		c.MaxSlewRate = DefaultMaxSlewRate
	}
	return c
}

// Validate reports whether c is usable; the error wraps
// clock.ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	for i, s := range c.Servers {
		if s == "" {
			return fmt.Errorf("%w: NTP server %d is empty", clock.ErrInvalidConfig, i)
		}
	}
	if c.Interval < 0 {
		return fmt.Errorf("%w: NTP Interval %v is negative", clock.ErrInvalidConfig, c.Interval)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: NTP Timeout %v is negative", clock.ErrInvalidConfig, c.Timeout)
	}
	if c.MaxOffset < 0 {
		return fmt.Errorf("%w: NTP MaxOffset %v is negative", clock.ErrInvalidConfig, c.MaxOffset)
	}
	if c.MaxLead < 0 {
		return fmt.Errorf("%w: NTP MaxLead %v is negative", clock.ErrInvalidConfig, c.MaxLead)
	}
	if !(c.MaxSlewRate >= 0 && c.MaxSlewRate <= 1) {
		return fmt.Errorf("%w: NTP MaxSlewRate %v is not in [0, 1]", clock.ErrInvalidConfig, c.MaxSlewRate)
	}
	return nil
}

// ServerStatus is one server's answer in the latest round. A plain
// value, safe for concurrent use.
type ServerStatus struct {
	Server string
	// Offset and RTT are valid when Err is nil.
	Offset time.Duration
	RTT    time.Duration
	// Err wraps ErrQuery or ErrInvalid; nil for a valid response.
	Err error
}

// Status describes an [Monitor], for metrics and health checks. It
// is a snapshot whose Servers slice is a copy: it shares nothing with the
// monitor and is safe for concurrent use.
type Status struct {
	// Enabled is false when no servers are configured.
	Enabled bool
	// Safe is what [Monitor.Safe] returns.
	Safe bool
	// MaxOffset is the configured limit.
	MaxOffset time.Duration

	// Offset is how far NTP time is ahead of the source's wall clock
	// (negative: behind), from the valid response with the lowest RTT in
	// the latest round that had one; with Config.IDClock, of the wall
	// clock the ID clock follows, once the round's verdict on a held step
	// is applied. RTT and Server are that response's. All three are zero
	// until the first valid response.
	Offset time.Duration
	RTT    time.Duration
	Server string
	// LastSuccess is the source's wall clock when that round ended; zero
	// until the first valid response. Callers judge staleness with it.
	LastSuccess time.Time

	// LastError is the latest failed query or invalid response, of any
	// server and any round; nil if there has been none. LastErrorAt is
	// the source's wall clock when its round ended.
	LastError   error
	LastErrorAt time.Time
	// ConsecutiveFailures counts the rounds in a row, up to the latest,
	// in which no server gave a valid response.
	ConsecutiveFailures uint64
	// Rounds counts completed rounds; Queries and Failures count single
	// queries, Failures those that ended in an error.
	Rounds, Queries, Failures uint64
	// Confirmed counts the rounds that found a step held by the ID clock
	// true and released it; Refuted those that found one wrong (it stays
	// held). Both stay zero without Config.IDClock.
	Confirmed, Refuted uint64
	// Lead is how far the ID clock was ahead of NTP time (negative:
	// behind) at the latest valid response, with Config.IDClock; past
	// MaxOffset + MaxLead the clock is unsafe.
	Lead, MaxLead time.Duration

	// Servers holds each server's answer in the latest round.
	Servers []ServerStatus
}

// Monitor queries NTP servers periodically and reports how far the wall
// clock of its source is from NTP time. It only observes: it neither sets
// nor slews any clock, and it logs nothing; everything is in [Status].
//
// Offsets are measured against the source's wall clock (the one the ID
// clock reads), not the host's, so that a [clock.Skewed] source shows its
// shift. Safe for concurrent use.
type Monitor struct {
	cfg  Config
	src  clock.Source
	stop chan struct{}
	done chan struct{}

	safe atomic.Bool // mu.st.Safe, for CheckClock on every call of a hot path

	closeOnce sync.Once

	mu struct {
		sync.Mutex
		st     Status
		closed bool
		// conns are the queries' sockets, closed by Close so that it does
		// not wait out a Timeout.
		conns map[net.Conn]struct{}
		// checked is set once a round has ended with a verdict, or with
		// no answer at all (see Safe).
		checked bool
		// leadRef is what the latest valid answer's lead was measured
		// against, for CheckClock to measure it again.
		leadRef leadRef
		// answered is the monotonic time of the latest valid answer (or
		// of Start), and lag what the latest round found of a held step
		// being slewed away, for Config.MaxSlewRate.
		answered time.Duration
		lag      lagSeen
	}
}

// Start starts a monitor of src's wall clock against cfg.Servers:
// one goroutine that runs a round at once and then one every cfg.Interval
// of src's monotonic time, querying all servers of a round in parallel.
// With no servers it starts nothing and reports Safe. Call Close to stop it.
//
// Errors: clock.ErrNilSource if src is nil; clock.ErrInvalidConfig
// (wrapped, with the reason) if cfg.Validate fails.
func Start(cfg Config, src clock.Source) (*Monitor, error) {
	if src == nil {
		return nil, clock.ErrNilSource
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Servers = append([]string(nil), cfg.Servers...) // the caller's slice may change
	m := &Monitor{
		cfg:  cfg,
		src:  src,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	enabled := len(cfg.Servers) > 0
	m.mu.st = Status{Enabled: enabled, Safe: !enabled, MaxOffset: cfg.MaxOffset, MaxLead: cfg.MaxLead}
	m.safe.Store(!enabled)
	m.mu.conns = make(map[net.Conn]struct{})
	m.mu.answered = src.Mono()
	if len(cfg.Servers) == 0 {
		close(m.done)
		return m, nil
	}
	go m.run()
	return m, nil
}

// Safe reports whether the wall clock is within MaxOffset of NTP time by
// the latest valid response. It is true while the monitor is disabled,
// and false until the first round has ended: a process that starts with
// a wrong wall clock must not date IDs, nor persist a watermark, by it
// before the check could say so. That costs a start one round trip to
// the servers, or one Timeout when none answers.
//
// A monitor whose servers do not answer is as safe as its last valid
// response, or safe if there never was one: NTP being unreachable does
// not make the clock wrong, and
// uniqueness never rests on the wall clock (the ID clock never goes back,
// and restarts start after the persisted watermark). Callers that want a
// fresh measurement check LastSuccess and ConsecutiveFailures.
func (m *Monitor) Safe() bool { return m.safe.Load() }

// CheckClock returns nil while the clock is [Monitor.Safe], and otherwise
// an error wrapping ErrUnsafe that gives the offset, the server that
// measured it and the limit. It costs one atomic load while the clock is
// safe, so a worker can call it before every ID it issues
// (workerid.Config.ClockCheck); it is also a readiness check.
func (m *Monitor) CheckClock() error {
	if m.safe.Load() {
		return nil
	}
	m.mu.Lock()
	st := m.mu.st // its Servers are not read here: no copy
	m.mu.Unlock()
	switch {
	case st.Safe:
		return nil // made safe since the load above
	case st.LastSuccess.IsZero():
		return fmt.Errorf("%w: not checked yet: the first NTP round has not ended", ErrUnsafe)
	case m.within(st.Offset) && m.leadBack():
		return nil
	case m.within(st.Offset):
		return fmt.Errorf("%w: the ID clock is %v ahead of NTP time (server %s), beyond the %v allowed: it started, or the wall clock stepped, that far ahead, and it slows down until it is back (--slew-back-rate); a restart resumes sooner when the watermark is not as far ahead (mig status)",
			ErrUnsafe, st.Lead, st.Server, st.MaxOffset+st.MaxLead)
	}
	return fmt.Errorf("%w: server %s puts the wall clock %v off (NTP time minus wall clock), beyond the limit of %v",
		ErrUnsafe, st.Server, st.Offset, st.MaxOffset)
}

// Status returns a copy of the monitor's state.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.mu.st
	st.Servers = append([]ServerStatus(nil), st.Servers...)
	return st
}

// Close stops the monitor, interrupting queries in flight, and waits for
// its goroutine to end. Close is idempotent.
func (m *Monitor) Close() {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.mu.closed = true
		conns := make([]net.Conn, 0, len(m.mu.conns))
		for c := range m.mu.conns {
			conns = append(conns, c)
		}
		m.mu.Unlock()
		// Outside the lock: a trackedConn's Close takes it.
		for _, c := range conns {
			c.Close() // unblocks the query's read; its error is of no interest
		}
		close(m.stop)
	})
	<-m.done
}

func (m *Monitor) run() {
	defer close(m.done)
	var stepped <-chan struct{} // nil, never ready, without an ID clock
	if m.cfg.IDClock != nil {
		stepped = m.cfg.IDClock.Stepped()
	}
	for {
		began := m.src.Mono()
		wait := m.cfg.Interval
		if !m.round() {
			wait = minStepRound // the round decided nothing: look again
		} else if x := m.leadExcess(); x > 0 {
			// Refusing for the ID clock's lead, which shrinks as it slows
			// down: look again as it may be back.
			wait = min(wait, max(minStepRound, x))
		}
		select {
		case <-m.stop:
			return
		case <-m.src.After(wait):
			continue
		case <-stepped:
		}
		if early := minStepRound - (m.src.Mono() - began); early > 0 {
			select {
			case <-m.stop:
				return
			case <-m.src.After(early):
			}
		}
	}
}

// round queries every server and records the outcome. It reports false
// when the ID clock saw the wall clock step during the round: its
// offsets are then of no use (a query may have read the wall clock on
// either side of the step), and nothing but the counts is recorded.
func (m *Monitor) round() bool {
	b := m.basis()
	res := m.queryAll()
	end := m.basis()
	steady := end.Changes == b.Changes
	at := m.src.Now().Wall

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		// Queries cut short by Close failed for that reason alone.
		return true
	}
	if !steady {
		for i := range res {
			res[i] = ServerStatus{Server: res[i].Server, Err: fmt.Errorf("%w: %s: %w", ErrQuery, res[i].Server, errStepDuringRound)}
		}
	}
	return m.recordLocked(res, at, b, end, !steady)
}

// bestOf returns the index of the valid answer with the lowest RTT in
// res, or -1 if there is none.
func bestOf(res []ServerStatus) int {
	best := -1
	for i, r := range res {
		if r.Err == nil && (best < 0 || r.RTT < res[best].RTT) {
			best = i
		}
	}
	return best
}

// Measure asks every server of cfg once, now, and returns the valid
// answer with the lowest RTT, its Offset that of src's wall clock; ok is
// false when no server gave one. It waits at most cfg.Timeout. `mig
// serve` calls it before it makes the ID clock, to start that at NTP
// time when the wall clock is ahead (clock.SlewConfig.StartHeld).
func Measure(cfg Config, src clock.Source) (best ServerStatus, ok bool) {
	if src == nil || cfg.Validate() != nil {
		return ServerStatus{}, false
	}
	cfg = cfg.withDefaults()
	cfg.IDClock = nil
	m := &Monitor{cfg: cfg, src: src}
	m.mu.conns = make(map[net.Conn]struct{})
	res := m.queryAll()
	if i := bestOf(res); i >= 0 {
		return res[i], true
	}
	return ServerStatus{}, false
}

// lagSeen is how far a round found the wall clock followed behind NTP
// time while a step was held, with the steps counted then (Changes) and
// the time of the answer before it.
type lagSeen struct {
	changes uint64
	amount  time.Duration
	from    time.Duration
}

// leadRef is the steps counted (clock.Basis.Changes) and the offset NTP
// measured of the wall clock followed, at a round's end.
type leadRef struct {
	changes uint64
	offset  time.Duration
}

// lead is how far the ID clock is ahead of NTP time at b, when NTP time
// is off ahead of b.Wall.
func lead(b clock.Basis, off time.Duration) time.Duration {
	return b.Clock.Sub(b.Wall) - off
}

// leadBack measures the ID clock's lead again, against the latest
// answer, while only that lead makes the clock unsafe, and makes it safe
// if the lead is back within bounds: the ID clock slows down between
// rounds, and a refusal for its lead must not wait for NTP to answer
// again, nor for the next round. A step counted since (Changes) makes
// the latest answer no measure of the clock: the round it asked for
// decides then. Smaller steps since are not counted: the lead measured
// may be short by up to HoldForward of them.
func (m *Monitor) leadBack() bool {
	c := m.cfg.IDClock
	if c == nil {
		return false
	}
	b := c.Basis()
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ref := &m.mu.st, m.mu.leadRef
	switch {
	case st.Safe:
		return true
	case st.LastSuccess.IsZero() || !m.within(st.Offset) || b.Changes != ref.changes:
		return false
	}
	l := lead(b, ref.offset)
	if l > m.cfg.MaxOffset+m.cfg.MaxLead {
		return false
	}
	st.Lead, st.Safe = l, true
	m.safe.Store(true)
	return true
}

// leadExcess is how far the ID clock was ahead of NTP time beyond what
// is allowed, at the latest round, when only that made the clock unsafe.
func (m *Monitor) leadExcess() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.mu.st
	if st.Safe || st.LastSuccess.IsZero() || !m.within(st.Offset) {
		return 0
	}
	return st.Lead - (m.cfg.MaxOffset + m.cfg.MaxLead)
}

// queryAll asks every server at once.
func (m *Monitor) queryAll() []ServerStatus {
	res := make([]ServerStatus, len(m.cfg.Servers))
	var wg sync.WaitGroup
	for i, server := range m.cfg.Servers {
		wg.Go(func() { res[i] = m.query(server) })
	}
	wg.Wait()
	return res
}

// basis is the wall clock offsets are measured against: the one the ID
// clock follows, if the monitor has it, else the source's.
func (m *Monitor) basis() clock.Basis {
	if c := m.cfg.IDClock; c != nil {
		return c.Basis()
	}
	return clock.Basis{Wall: m.src.Now().Wall}
}

func (m *Monitor) wall() time.Time { return m.basis().Wall }

// within reports whether the wall clock is safe at offset off.
func (m *Monitor) within(off time.Duration) bool {
	return off <= m.cfg.MaxOffset && -off <= m.cfg.MaxOffset
}

// recordLocked records a round's answers, measured against basis (taken
// as it began; end as it ended); void is true when the wall clock
// stepped during the round, and res holds no valid answer then. It
// reports false when the round decided nothing for a step: it was void,
// or the ID clock refused its verdict.
func (m *Monitor) recordLocked(res []ServerStatus, at time.Time, basis, end clock.Basis, void bool) bool {
	st := &m.mu.st
	st.Rounds++
	st.Servers = res
	for _, r := range res {
		st.Queries++
		if r.Err != nil {
			st.Failures++
			st.LastError, st.LastErrorAt = r.Err, at
		}
	}
	best := bestOf(res)
	if best < 0 {
		st.ConsecutiveFailures++
		m.mu.lag = lagSeen{} // two rounds in a row must agree, not two answers
		if !m.mu.checked && !void {
			// The first round, and no answer: see Safe.
			st.Safe = true
			m.safe.Store(true)
		}
		m.mu.checked = m.mu.checked || !void
		return !void
	}
	m.mu.checked = true
	b := res[best]
	off := b.Offset
	safe, decided := m.within(off), true
	if c := m.cfg.IDClock; c != nil {
		// off is of the wall clock less the held step: the stepped wall
		// clock is off-Held from NTP time. Settle refuses a verdict on a
		// clock that stepped since the round began: the next round,
		// which that step asked for, judges it.
		stepped := off - basis.Held
		lag := m.mu.lag
		m.mu.lag = lagSeen{}
		switch {
		case basis.Held > 0 && m.within(stepped) && stepped.Abs() <= off.Abs():
			decided = c.Settle(basis, basis.Held)
			if decided {
				st.Confirmed++
				off = stepped
			}
		case basis.Held > 0 && off > m.cfg.MaxOffset/2 && (lag.changes != basis.Changes || lag.amount == 0):
			// Wrong, but being slewed away: see Config.MaxSlewRate. One
			// answer is not enough: the next round, soon, must agree.
			// Until it does, the verdict before stands: the clock
			// followed is behind, which dates IDs late, not early.
			m.mu.lag = lagSeen{changes: basis.Changes, amount: off, from: m.mu.answered}
			st.ConsecutiveFailures = 0
			return false
		case basis.Held > 0 && off > m.cfg.MaxOffset/2:
			st.Refuted++
			// The spans of two releases never overlap (the first round of
			// a pair comes after the last release), so that however the
			// rounds fall, no more than MaxSlewRate of the time goes.
			span := m.src.Mono() - lag.from
			part := min(off, lag.amount, basis.Held, time.Duration(m.cfg.MaxSlewRate*float64(span)))
			decided = c.Settle(basis, part)
			if decided {
				off -= part
			}
		case basis.Held > 0:
			st.Refuted++
			decided = !safe || c.Settle(basis, 0)
		case safe:
			decided = c.Settle(basis, 0) // the steps it followed were right
		}
		// The ID clock itself, as the round ended; a release only moves
		// it up to the wall clock, within MaxOffset.
		st.Lead = lead(end, b.Offset)
		m.mu.leadRef = leadRef{end.Changes, off}
		safe = m.within(off) && st.Lead <= m.cfg.MaxOffset+m.cfg.MaxLead
	}
	m.mu.answered = m.src.Mono()
	st.ConsecutiveFailures = 0
	st.Offset, st.RTT, st.Server, st.LastSuccess = off, b.RTT, b.Server, at
	st.Safe = safe
	m.safe.Store(safe)
	return decided
}

// query asks one server and validates its answer.
func (m *Monitor) query(server string) ServerStatus {
	out := ServerStatus{Server: server}
	resp, err := beevik.QueryWithOptions(server, beevik.QueryOptions{
		Timeout: m.cfg.Timeout,
		// Measure the wall clock IDs are made of: the source's, less any
		// step the ID clock holds.
		GetSystemTime: m.wall,
		Dialer:        m.dial,
	})
	if err != nil {
		out.Err = fmt.Errorf("%w: %s: %w", ErrQuery, server, err)
		return out
	}
	if err := resp.Validate(); err != nil {
		out.Err = fmt.Errorf("%w: %s: %w", ErrInvalid, server, err)
		return out
	}
	out.Offset, out.RTT = resp.ClockOffset, resp.RTT
	return out
}

// dial opens a query's UDP socket and registers it with the monitor, so
// that Close can cut the query short. beevik/ntp closes it when the query
// ends, which unregisters it.
func (m *Monitor) dial(_, remote string) (net.Conn, error) {
	raddr, err := net.ResolveUDPAddr("udp", remote)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		c.Close()
		return nil, errMonitorClosed
	}
	tc := &trackedConn{Conn: c, m: m}
	m.mu.conns[tc] = struct{}{}
	return tc, nil
}

// trackedConn removes itself from its monitor's set when closed.
type trackedConn struct {
	net.Conn
	m    *Monitor
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.mu.conns, c)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}
