package ntp

import (
	"errors"
	"strings"
	"testing"
	"time"

	beevik "github.com/beevik/ntp"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/fakentp"
)

// startFakeNTP starts a fake server on 127.0.0.1 whose clock runs offset
// ahead of the host's, stopped when the test ends.
func startFakeNTP(t *testing.T, offset time.Duration) *fakentp.Server {
	t.Helper()
	f, err := fakentp.Start(offset)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// start is the manual clock's wall time; NTP offsets are measured on the
// host's clock, so it only needs to be a valid time.
var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// waitFor polls cond until it holds, failing the test after a generous
// timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// drivenSource reads the host's clock, so NTP offsets are real, but waits
// on a clock.Manual clock, so the test decides when the next round starts.
type drivenSource struct {
	real   *clock.Real
	manual *clock.Manual
}

func newDrivenSource() drivenSource {
	return drivenSource{real: clock.NewReal(), manual: clock.NewManual(start)}
}

func (d drivenSource) Now() clock.Reading                    { return d.real.Now() }
func (d drivenSource) Mono() time.Duration                   { return d.real.Mono() }
func (d drivenSource) After(x time.Duration) <-chan struct{} { return d.manual.After(x) }

func startMonitor(t *testing.T, cfg Config, src clock.Source) *Monitor {
	t.Helper()
	m, err := Start(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func waitRounds(t *testing.T, m *Monitor, n uint64) Status {
	t.Helper()
	waitFor(t, "an NTP round", func() bool { return m.Status().Rounds >= n })
	return m.Status()
}

// near reports whether got is within tolerance of want; loopback under the
// race detector answers in well under the tolerance.
func near(got, want time.Duration) bool {
	const tolerance = 100 * time.Millisecond
	return got > want-tolerance && got < want+tolerance
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"servers", Config{Servers: []string{"pool.ntp.org", "10.0.0.1:123"}}, true},
		{"empty server", Config{Servers: []string{"a", ""}}, false},
		{"negative interval", Config{Interval: -time.Second}, false},
		{"negative timeout", Config{Timeout: -time.Second}, false},
		{"negative max offset", Config{MaxOffset: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, clock.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want clock.ErrInvalidConfig", err)
			}
		})
	}
	if _, err := Start(Config{Servers: []string{""}}, clock.NewReal()); !errors.Is(err, clock.ErrInvalidConfig) {
		t.Fatalf("Start with a bad config: %v, want clock.ErrInvalidConfig", err)
	}
	if _, err := Start(Config{}, nil); !errors.Is(err, clock.ErrNilSource) {
		t.Fatalf("Start with a nil source: %v, want clock.ErrNilSource", err)
	}
}

func TestMonitorDisabled(t *testing.T) {
	src := newDrivenSource()
	m := startMonitor(t, Config{}, src)
	if !m.Safe() || m.CheckClock() != nil {
		t.Fatalf("a monitor without servers must be safe: CheckClock() = %v", m.CheckClock())
	}
	if st := m.Status(); st.Enabled || !st.Safe || st.Rounds != 0 || st.MaxOffset != DefaultMaxOffset {
		t.Fatalf("Status() = %+v", st)
	}
	if n := src.manual.Waiters(); n != 0 {
		t.Fatalf("a disabled monitor waits on the clock (%d waiters)", n)
	}
	m.Close()
	m.Close()
}

func TestMonitorOffset(t *testing.T) {
	for _, tc := range []struct {
		name      string
		offset    time.Duration
		maxOffset time.Duration
		safe      bool
	}{
		{"2s ahead is unsafe", 2 * time.Second, 500 * time.Millisecond, false},
		{"2s behind is unsafe", -2 * time.Second, 0, false},
		{"10ms is safe", 10 * time.Millisecond, 0, true},
		{"2s within a 5s limit", 2 * time.Second, 5 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeNTP(t, tc.offset)
			src := newDrivenSource()
			m := startMonitor(t, Config{Servers: []string{f.Addr()}, MaxOffset: tc.maxOffset, Timeout: 5 * time.Second}, src)
			st := waitRounds(t, m, 1)
			if st.Safe != tc.safe || m.Safe() != tc.safe {
				t.Fatalf("Safe = %v, want %v (status %+v)", st.Safe, tc.safe, st)
			}
			err := m.CheckClock()
			if tc.safe && err != nil {
				t.Fatalf("CheckClock() = %v on a safe clock", err)
			}
			if !tc.safe && (!errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), f.Addr()) || !strings.Contains(err.Error(), st.MaxOffset.String())) {
				t.Fatalf("CheckClock() = %v, want ErrUnsafe naming the server %s and the limit %v", err, f.Addr(), st.MaxOffset)
			}
			if !near(st.Offset, tc.offset) {
				t.Fatalf("Offset = %v, want about %v", st.Offset, tc.offset)
			}
			if !st.Enabled || st.Server != f.Addr() || st.LastSuccess.IsZero() || st.LastError != nil ||
				st.ConsecutiveFailures != 0 || st.Queries != 1 || st.Failures != 0 || len(st.Servers) != 1 {
				t.Fatalf("Status() = %+v", st)
			}
			if st.RTT < 0 || st.RTT > time.Second {
				t.Fatalf("RTT = %v", st.RTT)
			}
		})
	}
}

func TestMonitorNoAnswer(t *testing.T) {
	f := startFakeNTP(t, 0)
	f.SetSilent(true)
	src := newDrivenSource()
	const interval = time.Minute
	m := startMonitor(t, Config{Servers: []string{f.Addr()}, Interval: interval, Timeout: 100 * time.Millisecond}, src)

	st := waitRounds(t, m, 1)
	if st.ConsecutiveFailures != 1 || st.Failures != 1 || !errors.Is(st.LastError, ErrQuery) || st.LastErrorAt.IsZero() {
		t.Fatalf("after a silent round: %+v", st)
	}
	if !st.Safe || !st.LastSuccess.IsZero() || st.Offset != 0 {
		t.Fatalf("no measurement must leave the clock safe and unmeasured: %+v", st)
	}

	waitFor(t, "the monitor to wait", func() bool { return src.manual.Waiters() == 1 })
	src.manual.Advance(interval)
	if st := waitRounds(t, m, 2); st.ConsecutiveFailures != 2 || st.Failures != 2 {
		t.Fatalf("after two silent rounds: %+v", st)
	}

	// The server comes back: the failures reset, the error stays.
	f.SetSilent(false)
	waitFor(t, "the monitor to wait", func() bool { return src.manual.Waiters() == 1 })
	src.manual.Advance(interval)
	st = waitRounds(t, m, 3)
	if st.ConsecutiveFailures != 0 || st.Failures != 2 || st.LastError == nil || st.LastSuccess.IsZero() {
		t.Fatalf("after recovering: %+v", st)
	}
}

// TestMonitorUncheckedUntilFirstRound: a monitor calls the clock unsafe
// until its first round ends, naming why, and safe after a first round
// nobody answered.
func TestMonitorUncheckedUntilFirstRound(t *testing.T) {
	f := startFakeNTP(t, 0)
	f.SetSilent(true)
	m := startMonitor(t, Config{Servers: []string{f.Addr()}, Interval: time.Minute, Timeout: 2 * time.Second}, newDrivenSource())
	<-f.Requests() // the first round is under way, and waits for its Timeout
	err := m.CheckClock()
	if m.Safe() || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "not checked yet") {
		t.Fatalf("during the first round: Safe %v, CheckClock() = %v; want unsafe, not checked yet", m.Safe(), err)
	}
	if st := waitRounds(t, m, 1); !st.Safe || m.CheckClock() != nil {
		t.Fatalf("after a first round with no answer: %+v, want safe", st)
	}
}

func TestMonitorInvalidResponse(t *testing.T) {
	f := startFakeNTP(t, 0)
	f.SetStratum(0) // kiss of death
	m := startMonitor(t, Config{Servers: []string{f.Addr()}}, newDrivenSource())
	st := waitRounds(t, m, 1)
	if !errors.Is(st.LastError, ErrInvalid) || !errors.Is(st.LastError, beevik.ErrKissOfDeath) {
		t.Fatalf("LastError = %v, want ErrInvalid wrapping beevik.ErrKissOfDeath", st.LastError)
	}
	if st.ConsecutiveFailures != 1 || !st.Safe {
		t.Fatalf("Status() = %+v", st)
	}
}

// TestMonitorBestOfRound uses one silent and two answering servers: the
// round succeeds with one of the answers, and the silent one's error is kept.
func TestMonitorBestOfRound(t *testing.T) {
	silent := startFakeNTP(t, 0)
	silent.SetSilent(true)
	a := startFakeNTP(t, 40*time.Millisecond)
	b := startFakeNTP(t, 40*time.Millisecond)
	m := startMonitor(t, Config{
		Servers: []string{silent.Addr(), a.Addr(), b.Addr()},
		Timeout: 100 * time.Millisecond,
	}, newDrivenSource())
	st := waitRounds(t, m, 1)
	if st.ConsecutiveFailures != 0 || st.Queries != 3 || st.Failures != 1 || !errors.Is(st.LastError, ErrQuery) {
		t.Fatalf("Status() = %+v", st)
	}
	if st.Server != a.Addr() && st.Server != b.Addr() || !near(st.Offset, 40*time.Millisecond) || !st.Safe {
		t.Fatalf("best response: server %q offset %v safe %v", st.Server, st.Offset, st.Safe)
	}
	if len(st.Servers) != 3 || st.Servers[0].Err == nil || st.Servers[1].Err != nil || st.Servers[2].Err != nil {
		t.Fatalf("Servers = %+v", st.Servers)
	}
	for _, s := range st.Servers[1:] {
		if s.RTT < st.RTT {
			t.Fatalf("chose RTT %v over %v", st.RTT, s.RTT)
		}
	}
}

func TestMonitorSeesOffsetChange(t *testing.T) {
	f := startFakeNTP(t, 0)
	src := newDrivenSource()
	const interval = 32 * time.Second
	m := startMonitor(t, Config{Servers: []string{f.Addr()}}, src)

	for i, tc := range []struct {
		offset time.Duration
		safe   bool
	}{
		{0, true},
		{3 * time.Second, false},
		{-200 * time.Millisecond, true},
		{-time.Second, false},
	} {
		f.SetOffset(tc.offset)
		if i > 0 {
			waitFor(t, "the monitor to wait", func() bool { return src.manual.Waiters() == 1 })
			if got := m.Status().Rounds; got != uint64(i) {
				t.Fatalf("round %d ran before the interval passed", got)
			}
			src.manual.Advance(interval)
		}
		st := waitRounds(t, m, uint64(i+1))
		if !near(st.Offset, tc.offset) || st.Safe != tc.safe {
			t.Fatalf("round %d: offset %v safe %v, want about %v and %v", i+1, st.Offset, st.Safe, tc.offset, tc.safe)
		}
	}
}

// TestMonitorSkewedSource checks that the monitor measures its source's
// wall clock, so a Skewed source's shift shows as offset.
func TestMonitorSkewedSource(t *testing.T) {
	f := startFakeNTP(t, 0)
	src := newDrivenSource()
	skewed := clock.NewSkewed(src, -3*time.Second) // our wall clock 3s behind
	m := startMonitor(t, Config{Servers: []string{f.Addr()}}, skewed)
	st := waitRounds(t, m, 1)
	if !near(st.Offset, 3*time.Second) || st.Safe {
		t.Fatalf("offset %v safe %v, want about 3s and unsafe", st.Offset, st.Safe)
	}
}

// TestMonitorCloseInterrupts closes the monitor while a query waits on
// a server that never answers: Close must not wait out the Timeout.
func TestMonitorCloseInterrupts(t *testing.T) {
	f := startFakeNTP(t, 0)
	f.SetSilent(true)
	m, err := Start(Config{Servers: []string{f.Addr()}, Timeout: time.Hour}, newDrivenSource())
	if err != nil {
		t.Fatal(err)
	}
	<-f.Requests() // the query is in flight
	closed := make(chan struct{})
	go func() {
		m.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close waited for the query's timeout")
	}
	if st := m.Status(); st.Rounds != 0 {
		t.Fatalf("a round cut short by Close was recorded: %+v", st)
	}
	m.Close()
}

// heldClock is an ID clock holding steps forward past 500 ms, on a wall
// clock the test steps, checked by a monitor against a fake server on
// the host's clock. Rounds come only when the ID clock signals a step
// (the interval is an hour), after the test advances the manual clock
// over the gap between rounds.
type heldClock struct {
	src  drivenSource
	wall *clock.Skewed
	id   *clock.Slewing
	m    *Monitor
	f    *fakentp.Server
}

func startHeld(t *testing.T, skew time.Duration) *heldClock {
	t.Helper()
	return startHeldCfg(t, skew, Config{})
}

// startHeldCfg is startHeld with cfg's MaxSlewRate.
func startHeldCfg(t *testing.T, skew time.Duration, cfg Config) *heldClock {
	t.Helper()
	h := &heldClock{src: newDrivenSource(), f: startFakeNTP(t, 0)}
	h.wall = clock.NewSkewed(h.src, skew)
	var err error
	h.id, err = clock.NewSlewing(h.wall, clock.SlewConfig{HoldForward: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Servers, cfg.Interval, cfg.Timeout, cfg.IDClock = []string{h.f.Addr()}, time.Hour, time.Second, h.id
	h.m = startMonitor(t, cfg, h.wall)
	waitRounds(t, h.m, 1)
	return h
}

// step steps the wall clock, lets the ID clock see it, and waits for the
// round it triggers.
func (h *heldClock) step(t *testing.T, d time.Duration) Status {
	t.Helper()
	// Not while a round runs: it would end void, or end before the step
	// and be counted as the round after it.
	waitFor(t, "the monitor to wait between rounds", func() bool { return h.src.manual.Waiters() > 0 })
	rounds := h.m.Status().Rounds
	h.wall.Step(d)
	h.id.UnixNano()
	waitFor(t, "a round after the step", func() bool {
		h.src.manual.Advance(minStepRound / 10)
		st := h.m.Status()
		return st.Rounds > rounds && !errors.Is(st.Servers[0].Err, errStepDuringRound)
	})
	return h.m.Status()
}

// idBehind is how far the ID clock is behind the host's clock.
func (h *heldClock) idBehind() time.Duration {
	return time.Duration(h.src.real.Now().Wall.UnixNano() - h.id.UnixNano())
}

// TestMonitorRefutesWrongStep: the wall clock steps an hour ahead of NTP
// time. The ID clock holds the step, the check runs at once, finds the
// stepped clock wrong, and keeps it held: the ID clock stays on time and
// the check safe. When the step is corrected nothing is held any more.
func TestMonitorRefutesWrongStep(t *testing.T) {
	h := startHeld(t, 0)
	st := h.step(t, time.Hour)
	if st.Refuted != 1 || st.Confirmed != 0 || !st.Safe || !near(st.Offset, 0) {
		t.Fatalf("after a wrong step: %+v, want it refuted, the clock safe at about 0", st)
	}
	if held := h.id.Status().Held; !near(held, time.Hour) {
		t.Fatalf("ID clock holds %v, want the hour", held)
	}
	if !near(h.idBehind(), 0) {
		t.Fatalf("ID clock %v behind real time, want on time", h.idBehind())
	}
	st = h.step(t, -time.Hour)
	if st.Refuted != 1 || st.Confirmed != 0 || !st.Safe || !near(st.Offset, 0) {
		t.Fatalf("after the correction: %+v", st)
	}
	if ids := h.id.Status(); ids.Held >= time.Millisecond || ids.Slewing {
		t.Fatalf("ID clock after the correction: %+v, want nothing held, not slewing", ids)
	}
}

// TestMonitorConfirmsTrueStep: the wall clock is an hour behind NTP time
// (unsafe), then steps forward to it. The ID clock holds the step until
// the round it triggers finds the stepped clock right and releases it.
func TestMonitorConfirmsTrueStep(t *testing.T) {
	h := startHeld(t, -time.Hour)
	if st := h.m.Status(); st.Safe {
		t.Fatalf("an hour behind: %+v, want unsafe", st)
	}
	st := h.step(t, time.Hour)
	if st.Confirmed != 1 || st.Refuted != 0 || !st.Safe || !near(st.Offset, 0) {
		t.Fatalf("after a true step: %+v, want it confirmed, the clock safe at about 0", st)
	}
	if ids := h.id.Status(); ids.Held >= time.Millisecond || ids.Released != 1 {
		t.Fatalf("ID clock after the confirmation: %+v", ids)
	}
	if !near(h.idBehind(), 0) {
		t.Fatalf("ID clock %v behind real time after the release, want on time", h.idBehind())
	}
}

// TestMonitorHoldsUnansweredStep: with no server answering, a step stays
// held, and the verdict comes with the first answer.
func TestMonitorHoldsUnansweredStep(t *testing.T) {
	h := startHeld(t, -time.Hour)
	h.f.SetSilent(true)
	st := h.step(t, time.Hour)
	if st.Confirmed != 0 || st.ConsecutiveFailures != 1 || !near(h.id.Status().Held, time.Hour) {
		t.Fatalf("no answer: %+v, ID clock %+v; want the step still held", st, h.id.Status())
	}
	h.f.SetSilent(false)
	rounds := st.Rounds
	waitFor(t, "a round with an answer", func() bool {
		h.src.manual.Advance(time.Hour)
		return h.m.Status().Rounds > rounds
	})
	if st := h.m.Status(); st.Confirmed != 1 || !st.Safe || h.id.Status().Held >= time.Millisecond {
		t.Fatalf("answered: %+v, ID clock %+v; want the step released", st, h.id.Status())
	}
}

// TestMeasure: one round, no monitor: the best answer's offset, or none.
func TestMeasure(t *testing.T) {
	f := startFakeNTP(t, -time.Hour)
	best, ok := Measure(Config{Servers: []string{f.Addr()}, Timeout: time.Second}, clock.NewReal())
	if !ok || !near(best.Offset, -time.Hour) || best.Server != f.Addr() {
		t.Fatalf("Measure() = %+v, %v; want about -1h from %s", best, ok, f.Addr())
	}
	f.SetSilent(true)
	if best, ok := Measure(Config{Servers: []string{f.Addr()}, Timeout: 100 * time.Millisecond}, clock.NewReal()); ok {
		t.Fatalf("Measure() with no answer = %+v, true", best)
	}
	if _, ok := Measure(Config{}, clock.NewReal()); ok {
		t.Fatal("Measure() with no servers reported an answer")
	}
}

// TestMonitorLead: the ID clock itself must be within MaxOffset + MaxLead
// of NTP time. A worker that started on a wall clock an hour ahead (no
// server answered its first question) and whose wall clock was then
// corrected follows the right wall clock, but its ID clock is still an
// hour ahead, slowing down: unsafe, saying why. A lead within MaxLead (a
// raise over a predecessor's watermark) is safe.
func TestMonitorLead(t *testing.T) {
	h := startHeld(t, time.Hour)
	if st := h.m.Status(); st.Safe || !near(st.Offset, -time.Hour) {
		t.Fatalf("an hour ahead: %+v, want unsafe", st)
	}
	st := h.step(t, -time.Hour) // the wall clock corrected
	err := h.m.CheckClock()
	if st.Safe || !near(st.Offset, 0) || !near(st.Lead, time.Hour) || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "ahead of NTP time") {
		t.Fatalf("corrected, the ID clock an hour ahead: %+v, CheckClock() = %v; want unsafe for the ID clock's lead", st, err)
	}

	r := startHeld(t, 0)
	r.id.Raise(r.src.real.Now().Wall.Add(10 * time.Second).UnixNano()) // a predecessor's watermark
	if st := r.step(t, time.Second); !st.Safe || !near(st.Lead, 10*time.Second) {
		t.Fatalf("raised 10s ahead: %+v, want safe, MaxLead being %v", st, DefaultMaxLead)
	}
}

// nextRound waits for a regular round, advancing the manual clock over
// the interval.
func (h *heldClock) nextRound(t *testing.T) Status {
	t.Helper()
	// One round only: advance once, with the monitor waiting for it.
	waitFor(t, "the monitor to wait between rounds", func() bool { return h.src.manual.Waiters() > 0 })
	rounds := h.m.Status().Rounds
	h.src.manual.Advance(time.Hour)
	waitFor(t, "a round", func() bool { return h.m.Status().Rounds > rounds })
	return h.m.Status()
}

// TestMonitorLeadBackWithoutNTP: a refusal for the ID clock's lead ends
// when the ID clock has slowed down enough, with no server answering.
func TestMonitorLeadBackWithoutNTP(t *testing.T) {
	h := startHeld(t, 0)
	h.id.Raise(h.src.real.Now().Wall.Add(21 * time.Second).UnixNano())
	if st := h.step(t, time.Second); st.Safe {
		t.Fatalf("the ID clock 21s ahead: %+v, want unsafe (MaxOffset + MaxLead %v)", st, DefaultMaxOffset+DefaultMaxLead)
	}
	h.f.SetSilent(true)
	waitFor(t, "the ID clock back within bounds, NTP silent", func() bool { return h.m.CheckClock() == nil })
	if st := h.m.Status(); !st.Safe || st.Lead > DefaultMaxOffset+DefaultMaxLead {
		t.Fatalf("after the ID clock slowed down: %+v", st)
	}
}

// TestMonitorSlewedCorrection: a wrong step held and refuted, then
// corrected by slewing the wall clock (small changes, no step): the
// clock followed falls behind NTP time, and when two rounds agree that
// much of the held step goes through, at most MaxSlewRate of the time
// since the answer before them; so the clock followed stays at NTP time
// and the check safe.
func TestMonitorSlewedCorrection(t *testing.T) {
	h := startHeldCfg(t, 0, Config{MaxSlewRate: 1})
	<-h.src.real.After(time.Second) // one second since the first answer: up to a second may go
	if st := h.nextRound(t); !st.Safe {
		t.Fatalf("before the step: %+v", st)
	}
	if st := h.step(t, 3*time.Second); st.Refuted != 1 || !st.Safe {
		t.Fatalf("a wrong 3s step: %+v, want refuted, safe", st)
	}
	for range 1000 { // half a second back, half a millisecond at a time: under the step threshold
		h.wall.Step(-500 * time.Microsecond)
		h.id.UnixNano()
	}
	<-h.src.real.After(time.Second)
	if st := h.nextRound(t); !near(h.id.Status().Held, 3*time.Second) || !st.Safe || !near(st.Offset, 0) {
		t.Fatalf("one round found the clock followed behind: %+v; want nothing let through on one answer, the verdict before standing", st)
	}
	st := h.nextRound(t) // the second, two seconds later
	if !st.Safe || !near(st.Offset, 0) || st.Refuted != 2 {
		t.Fatalf("half a second of the step slewed away: %+v, want safe at about 0", st)
	}
	if held := h.id.Status().Held; !near(held, 2500*time.Millisecond) {
		t.Fatalf("held %v, want about 2.5s", held)
	}
	if !near(h.idBehind(), 0) {
		t.Fatalf("ID clock %v behind real time, want on time", h.idBehind())
	}
	// Two answers with a silent round between them are not a pair.
	for range 600 { // the slew goes on, 0.3s more
		h.wall.Step(-500 * time.Microsecond)
		h.id.UnixNano()
	}
	held := h.id.Status().Held
	h.f.SetSilent(false)
	h.nextRound(t) // first of a pair
	h.f.SetSilent(true)
	h.nextRound(t) // no answer
	h.f.SetSilent(false)
	if h.nextRound(t); h.id.Status().Held != held {
		t.Fatalf("released %v on answers a silent round apart", held-h.id.Status().Held)
	}
	// Wrong answers let through no more than MaxSlewRate of the time
	// since the answer before them.
	rate := startHeldCfg(t, 0, Config{MaxSlewRate: 0.1})
	rate.step(t, time.Hour)
	rate.f.SetOffset(10 * time.Minute)
	<-rate.src.real.After(time.Second)
	rate.nextRound(t)
	rate.nextRound(t)
	if held := rate.id.Status().Held; held < time.Hour-time.Second {
		t.Fatalf("an answer ten minutes wrong released %v of the held hour, want at most 0.1s a second", time.Hour-held)
	}
}
