package workerid_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/workerid"
)

// switchedCheck is a workerid.ClockChecker the test turns: nil while safe.
type switchedCheck struct{ err atomic.Pointer[error] }

var _ workerid.ClockChecker = (*switchedCheck)(nil)

func (c *switchedCheck) CheckClock() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// TestClockCheck: while Config.ClockCheck says the clock is unsafe, Next
// and NextN refuse with ErrClockUnsafe, of the ErrUnavailable family and
// with the check's reason, without fencing the worker; once it says safe
// again they issue, above everything issued before.
func TestClockCheck(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	check := &switchedCheck{}
	cfg := fastConfig("tokyo", workerid.Range{First: 0, Last: 3})
	cfg.ClockCheck = check
	w := mustStart(t, cli, cfg, clock.NewReal())
	before := take(t, w, 10)

	unsafe := errors.New("wall clock 5s off NTP time")
	check.err.Store(&unsafe)
	if _, err := w.Next(); !errors.Is(err, workerid.ErrClockUnsafe) || !errors.Is(err, workerid.ErrUnavailable) || !errors.Is(err, unsafe) {
		t.Fatalf("Next with the clock unsafe = %v, want ErrClockUnsafe, ErrUnavailable and the check's error", err)
	}
	_, err := w.NextN(5)
	if !errors.Is(err, workerid.ErrClockUnsafe) || !strings.Contains(err.Error(), "clock unsafe") || !strings.Contains(err.Error(), "5s off") {
		t.Fatalf("NextN with the clock unsafe = %v, want ErrClockUnsafe saying why", err)
	}
	if got := w.Status().Stats.Fences; got != 0 {
		t.Fatalf("an unsafe clock fenced the worker (%d fences)", got)
	}

	check.err.Store(nil)
	assertAllAbove(t, take(t, w, 10), before)
}

// TestUnsafeClockPersistsNothing: a worker whose clock check fails does
// not persist a watermark by its ID clock, neither at its claim nor
// after, so a wall clock an hour ahead leaves the watermark where the
// claim put it; once the check passes it extends as before.
func TestUnsafeClockPersistsNothing(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	check := &switchedCheck{}
	unsafe := errors.New("wall clock an hour off NTP time")
	check.err.Store(&unsafe)
	cfg := fastConfig("tokyo", workerid.Range{First: 0, Last: 3})
	cfg.ClockCheck = check
	wall := clock.NewSkewed(clock.NewReal(), time.Hour)
	w := mustStart(t, cli, cfg, wall)
	real := clock.NewReal().Now().Wall
	ahead := func() time.Duration {
		st := w.Status()
		return cfg.Layout.TickTime(st.Watermark).Sub(real)
	}
	if a := ahead(); a > 2*cfg.Window {
		t.Fatalf("claimed with the clock unsafe and an hour ahead: watermark %v ahead of real time", a)
	}
	<-wall.After(4 * cfg.Window) // a window's worth of extensions, had there been any
	if a, writes := ahead(), w.Status().Stats.WatermarkWrites; a > 2*cfg.Window || writes != 1 {
		t.Fatalf("with the clock unsafe: watermark %v ahead of real time after %d writes, want only the claim's", a, writes)
	}
	check.err.Store(nil)
	// Soon, not a poll of the window later: the worker refuses until then.
	begin := wall.Mono()
	waitFor(t, "the watermark extended by the ID clock", 10*time.Second, func() bool { return ahead() > time.Hour })
	if took := wall.Mono() - begin; took > cfg.Window/8 {
		t.Logf("the extension came %v after the clock turned safe (a loaded host?)", took)
	}
	if _, err := w.Next(); err != nil {
		t.Fatalf("Next once the clock is safe: %v", err)
	}
}
