package ntp

import (
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	beevik "github.com/beevik/ntp"

	"github.com/migsvc/mig/clock"
)

// fakeNTP is an NTPv4 server on 127.0.0.1 whose clock runs offset ahead of
// the host's. It answers every 48-byte request, or none while silent.
type fakeNTP struct {
	conn    *net.UDPConn
	offset  atomic.Int64 // nanoseconds
	stratum atomic.Uint32
	silent  atomic.Bool
	got     chan struct{} // one send per request, if there is room
	done    chan struct{}
}

func startFakeNTP(t *testing.T, offset time.Duration) *fakeNTP {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNTP{conn: conn, got: make(chan struct{}, 1), done: make(chan struct{})}
	f.offset.Store(int64(offset))
	f.stratum.Store(2)
	go f.serve()
	t.Cleanup(func() {
		conn.Close()
		<-f.done
	})
	return f
}

func (f *fakeNTP) addr() string { return f.conn.LocalAddr().String() }

func (f *fakeNTP) serve() {
	defer close(f.done)
	buf := make([]byte, 512)
	for {
		n, from, err := f.conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		select {
		case f.got <- struct{}{}:
		default:
		}
		if n < 48 || f.silent.Load() {
			continue
		}
		off := time.Duration(f.offset.Load())
		recv := time.Now().Add(off)
		var resp [48]byte
		resp[0] = 0<<6 | 4<<3 | 4 // no leap warning, version 4, mode 4 (server)
		resp[1] = byte(f.stratum.Load())
		resp[2] = 6    // poll: 2^6 s
		resp[3] = 0xec // precision: 2^-20 s
		copy(resp[12:16], []byte{127, 0, 0, 1})
		// Reference time a second ago: fresh, and not after transmit.
		putNTPTime(resp[16:24], recv.Add(-time.Second))
		// Origin: the request's transmit field, which the client checks.
		copy(resp[24:32], buf[40:48])
		putNTPTime(resp[32:40], recv)
		putNTPTime(resp[40:48], time.Now().Add(off))
		f.conn.WriteToUDP(resp[:], from)
	}
}

// putNTPTime writes t as NTP seconds since 1900 and a 32-bit fraction.
func putNTPTime(b []byte, t time.Time) {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix() + unixToNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	binary.BigEndian.PutUint64(b, secs<<32|frac)
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
			m := startMonitor(t, Config{Servers: []string{f.addr()}, MaxOffset: tc.maxOffset, Timeout: 5 * time.Second}, src)
			st := waitRounds(t, m, 1)
			if st.Safe != tc.safe || m.Safe() != tc.safe {
				t.Fatalf("Safe = %v, want %v (status %+v)", st.Safe, tc.safe, st)
			}
			err := m.CheckClock()
			if tc.safe && err != nil {
				t.Fatalf("CheckClock() = %v on a safe clock", err)
			}
			if !tc.safe && (!errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), f.addr()) || !strings.Contains(err.Error(), st.MaxOffset.String())) {
				t.Fatalf("CheckClock() = %v, want ErrUnsafe naming the server %s and the limit %v", err, f.addr(), st.MaxOffset)
			}
			if !near(st.Offset, tc.offset) {
				t.Fatalf("Offset = %v, want about %v", st.Offset, tc.offset)
			}
			if !st.Enabled || st.Server != f.addr() || st.LastSuccess.IsZero() || st.LastError != nil ||
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
	f.silent.Store(true)
	src := newDrivenSource()
	const interval = time.Minute
	m := startMonitor(t, Config{Servers: []string{f.addr()}, Interval: interval, Timeout: 100 * time.Millisecond}, src)

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
	f.silent.Store(false)
	waitFor(t, "the monitor to wait", func() bool { return src.manual.Waiters() == 1 })
	src.manual.Advance(interval)
	st = waitRounds(t, m, 3)
	if st.ConsecutiveFailures != 0 || st.Failures != 2 || st.LastError == nil || st.LastSuccess.IsZero() {
		t.Fatalf("after recovering: %+v", st)
	}
}

func TestMonitorInvalidResponse(t *testing.T) {
	f := startFakeNTP(t, 0)
	f.stratum.Store(0) // kiss of death
	m := startMonitor(t, Config{Servers: []string{f.addr()}}, newDrivenSource())
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
	silent.silent.Store(true)
	a := startFakeNTP(t, 40*time.Millisecond)
	b := startFakeNTP(t, 40*time.Millisecond)
	m := startMonitor(t, Config{
		Servers: []string{silent.addr(), a.addr(), b.addr()},
		Timeout: 100 * time.Millisecond,
	}, newDrivenSource())
	st := waitRounds(t, m, 1)
	if st.ConsecutiveFailures != 0 || st.Queries != 3 || st.Failures != 1 || !errors.Is(st.LastError, ErrQuery) {
		t.Fatalf("Status() = %+v", st)
	}
	if st.Server != a.addr() && st.Server != b.addr() || !near(st.Offset, 40*time.Millisecond) || !st.Safe {
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
	m := startMonitor(t, Config{Servers: []string{f.addr()}}, src)

	for i, tc := range []struct {
		offset time.Duration
		safe   bool
	}{
		{0, true},
		{3 * time.Second, false},
		{-200 * time.Millisecond, true},
		{-time.Second, false},
	} {
		f.offset.Store(int64(tc.offset))
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
	m := startMonitor(t, Config{Servers: []string{f.addr()}}, skewed)
	st := waitRounds(t, m, 1)
	if !near(st.Offset, 3*time.Second) || st.Safe {
		t.Fatalf("offset %v safe %v, want about 3s and unsafe", st.Offset, st.Safe)
	}
}

// TestMonitorCloseInterrupts closes the monitor while a query waits on
// a server that never answers: Close must not wait out the Timeout.
func TestMonitorCloseInterrupts(t *testing.T) {
	f := startFakeNTP(t, 0)
	f.silent.Store(true)
	m, err := Start(Config{Servers: []string{f.addr()}, Timeout: time.Hour}, newDrivenSource())
	if err != nil {
		t.Fatal(err)
	}
	<-f.got // the query is in flight
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
