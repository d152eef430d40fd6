package scenario

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Clock faults.
const (
	clockBack    = -5 * time.Second
	clockForward = time.Hour
	// stepSeenTimeout bounds the wait for a server's ID clock to count a
	// step of its wall clock (the clock file is re-read every 100 ms).
	stepSeenTimeout = 10 * time.Second
)

// scenarios returns every scenario, in the order `all` runs them.
func scenarios() []Scenario {
	return []Scenario{
		{Name: "kill", About: "kill -9 of a server, restarted after a pause", run: killScenario},
		{Name: "partition", About: "a server (its datacenter's sequence arbiter) cut from its etcd; once etcd has expired its lease a replacement takes its worker ID; then healed", run: partitionScenario},
		{Name: "etcd-member", About: "one etcd member killed, then a second (quorum lost), both restored", run: etcdMemberScenario},
		{Name: "clock-back", About: "a server's wall clock stepped back 5s; killed and restarted with the clock still behind", tolerance: -clockBack + checkSlack, run: clockBackScenario},
		{Name: "clock-forward-then-back", About: "a server's wall clock stepped forward 1h, then corrected", ahead: clockForward, run: clockForwardScenario},
		{Name: "rolling-restart", About: "every server of a datacenter restarted (SIGTERM), one by one", run: rollingRestartScenario},
		{Name: "arbiter-loss", About: "a server leaves (its sequence groups move), and at once the sequence arbiter is killed; both come back", run: arbiterLossScenario},
	}
}

// killScenario: kill -9 of a server; the supervisor starts it again after
// the pause. While the dead server's lease lives its worker-ID range is
// full and the new process exits at once; the supervisor retries until
// it claims the ID, above the watermark its predecessor persisted.
func killScenario(ctx context.Context, e *env) error {
	s := e.d.dcs[0].servers()[1]
	s.kill()
	if err := e.sleep(ctx, e.dur); err != nil {
		return err
	}
	t := e.clk.Mono()
	e.tl.note("runner", "restarting %s after %v", s.name, e.dur)
	s.start()
	if _, err := s.waitServing(ctx, recoveryTimeout); err != nil {
		return err
	}
	return e.waitAnswering(ctx, s, t)
}

// partitionScenario: the sequence arbiter of dc1 is cut from every etcd
// member. It must stop issuing (self-fence) before etcd can expire its
// lease. The runner waits for etcd to drop its worker-ID claim, then
// starts a replacement in the standby slot, as an orchestrator replacing
// an unresponsive server would: the replacement claims the same worker ID
// and starts above its watermark while the old server still runs, cut
// off. Then the cut heals, the replacement stops, and the old server
// claims its ID again.
//
// This is the scenario a broken self-fence fails: the old server still
// answering after the replacement started gives that worker ID's IDs out
// of order.
func partitionScenario(ctx context.Context, e *env) error {
	dc := e.d.dcs[0]
	victim, err := e.seqLeader(ctx, dc)
	if err != nil {
		return err
	}
	wid := victim.workerID()
	t0 := e.clk.Mono()
	victim.cut()
	e.tl.note("runner", "cut %s (worker ID %d, sequence arbiter) from all %d etcd members", victim.name, wid, len(victim.proxies))
	if err := e.waitClaimGone(ctx, dc, wid); err != nil {
		return err
	}
	sb := dc.standby()
	e.tl.note("runner", "starting a replacement in %s", sb.name)
	sb.start()
	if _, err := sb.waitServing(ctx, recoveryTimeout); err != nil {
		return err
	}
	if wid >= 0 && sb.workerID() != wid {
		e.d.problem("the replacement claimed worker ID %d, not the partitioned server's %d", sb.workerID(), wid)
	}
	if err := e.sleep(ctx, max(e.dur-(e.clk.Mono()-t0), time.Second)); err != nil {
		return err
	}
	victim.heal()
	e.tl.note("runner", "healed %s's partition", victim.name)
	if err := e.sleep(ctx, time.Second); err != nil {
		return err
	}
	e.retire(sb)
	t1 := e.clk.Mono()
	return e.waitAnswering(ctx, victim, t1)
}

// etcdMemberScenario: dc1's etcd leader is killed; after half the
// duration a second member, so the cluster loses quorum; after the
// duration both come back. Without quorum no lease is renewed: every
// server of dc1 must fence itself, and claim again once etcd is back.
func etcdMemberScenario(ctx context.Context, e *env) error {
	dc := e.d.dcs[0]
	first := max(dc.etcd.Leader(), 0)
	if err := dc.etcd.Stop(first); err != nil {
		return err
	}
	e.tl.note("etcd "+dc.name, "member m%d killed (it was the leader); 2 of 3 left", first)
	if err := e.sleep(ctx, e.dur/2); err != nil {
		return err
	}
	second := (first + 1) % etcdMembers
	if err := dc.etcd.Stop(second); err != nil {
		return err
	}
	e.tl.note("etcd "+dc.name, "member m%d killed: quorum lost", second)
	if err := e.sleep(ctx, e.dur); err != nil {
		return err
	}
	t := e.clk.Mono()
	rctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	err := dc.etcd.Restart(rctx, first, second)
	cancel()
	if err != nil {
		return fmt.Errorf("restarting etcd members of %s: %w", dc.name, err)
	}
	e.tl.note("etcd "+dc.name, "members m%d and m%d restarted: quorum back", first, second)
	for _, s := range dc.servers() {
		if err := e.waitAnswering(ctx, s, t); err != nil {
			return err
		}
	}
	return e.waitSeqAnswering(ctx, dc, t)
}

// clockBackScenario: a server's wall clock steps back 5 s. Its ID clock
// must not follow: it slews (runs slower) until the wall clock catches
// up. Halfway, the server is killed and restarted with its clock still
// behind: the new process must start above the watermark the old one
// persisted, not at its wall clock.
func clockBackScenario(ctx context.Context, e *env) error {
	s := e.d.dcs[0].servers()[2]
	if err := e.stepClock(ctx, s, clockBack, "mig_clock_steps_back_total"); err != nil {
		return err
	}
	if err := e.sleep(ctx, e.dur/2); err != nil {
		return err
	}
	s.kill()
	t := e.clk.Mono()
	e.tl.note("runner", "restarting %s with its wall clock still %v off", s.name, clockBack)
	s.start()
	if _, err := s.waitServing(ctx, recoveryTimeout); err != nil {
		return err
	}
	if err := e.waitAnswering(ctx, s, t); err != nil {
		return err
	}
	if off, err := e.metric(ctx, s, "mig_clock_offset_seconds"); err == nil {
		e.tl.note(s.name, "ID clock ahead of its wall clock by %.3fs after the restart (raised over the watermark)", off)
	}
	return e.sleep(ctx, e.dur/2)
}

// clockForwardScenario: a server's wall clock steps an hour forward, then
// back to the right time. The ID clock follows the step forward (and
// persists a watermark an hour ahead), and does not follow the
// correction: its IDs stay an hour ahead, slewing back at half speed,
// rather than repeat an hour of IDs. The checker's Ahead bound is
// widened by the hour for this scenario; uniqueness and order are not.
func clockForwardScenario(ctx context.Context, e *env) error {
	s := e.d.dcs[1].servers()[1]
	if err := e.stepClock(ctx, s, clockForward, "mig_clock_steps_forward_total"); err != nil {
		return err
	}
	if err := e.sleep(ctx, e.dur/2); err != nil {
		return err
	}
	t := e.clk.Mono()
	if err := e.stepClock(ctx, s, 0, "mig_clock_steps_back_total"); err != nil {
		return err
	}
	if err := e.waitAnswering(ctx, s, t); err != nil {
		return err
	}
	return e.sleep(ctx, e.dur/2)
}

// rollingRestartScenario: every server of dc2 gets SIGTERM and is started
// again once it has exited, one after the other, a third of the duration
// apart. A clean shutdown persists the last tick issued and revokes the
// lease, so each restart claims again at once and continues above it.
func rollingRestartScenario(ctx context.Context, e *env) error {
	for _, s := range e.d.dcs[1].servers() {
		s.stop()
		t := e.clk.Mono()
		s.start()
		if _, err := s.waitServing(ctx, recoveryTimeout); err != nil {
			return err
		}
		if err := e.waitAnswering(ctx, s, t); err != nil {
			return err
		}
		if err := e.sleep(ctx, e.dur/3); err != nil {
			return err
		}
	}
	return nil
}

// arbiterLossScenario: a server of dc1 that is not the sequence arbiter
// leaves (SIGTERM: it hands its groups of sections over, and the arbiter
// writes a table that moves them), and at once, while that rebalance is
// under way, the arbiter is killed (kill -9). Another node must win the
// arbiter role and finish the job; the leaver's and the arbiter's groups
// are served again elsewhere, after their old owners' leases and the
// activation delay, without a uid going back. After the pause both
// servers come back and the groups spread again. (With seqfacade's
// single-owner mode, mig serve --seq-routed=false, the arbiter is the
// sole owner and this is a sole-owner loss.)
func arbiterLossScenario(ctx context.Context, e *env) error {
	dc := e.d.dcs[0]
	arb, err := e.seqLeader(ctx, dc)
	if err != nil {
		return err
	}
	var leaver *slot
	for _, s := range dc.servers() {
		if s != arb {
			leaver = s
			break
		}
	}
	left := leaver.signal(syscall.SIGTERM)
	arb.kill()
	leaver.waitExit(left)
	t := e.clk.Mono()
	if err := e.sleep(ctx, e.dur); err != nil {
		return err
	}
	e.tl.note("runner", "restarting %s and %s", leaver.name, arb.name)
	leaver.start()
	arb.start()
	for _, s := range []*slot{leaver, arb} {
		if _, err := s.waitServing(ctx, recoveryTimeout); err != nil {
			return err
		}
	}
	for _, s := range []*slot{leaver, arb} {
		if err := e.waitAnswering(ctx, s, t); err != nil {
			return err
		}
	}
	return e.waitSeqAnswering(ctx, dc, t)
}

// retire stops the server in s for good (SIGTERM): the load no longer
// counts its failures as unavailability.
func (e *env) retire(s *slot) {
	s.stop()
	e.l.server[slices.Index(e.d.slots, s)].retire(e.clk.Mono())
}

// seqLeader returns the server that leads dc's sequences: the arbiter
// (<prefix>/seq/arbiter, once sequences are spread over nodes) or else
// the sole owner (<prefix>/seq/owner). Both keys hold a node name, which
// is the slot's name (--seq-node).
func (e *env) seqLeader(ctx context.Context, dc *datacenter) (*slot, error) {
	var leader *slot
	err := e.poll(ctx, recoveryTimeout, dc.name+"'s sequence arbiter or owner in etcd", func() bool {
		for _, key := range []string{"/mig/seq/arbiter", "/mig/seq/owner"} {
			name, ok, err := dc.etcdGet(ctx, key)
			if err == nil && ok {
				if leader = dc.slot(name); leader != nil {
					e.tl.note("runner", "%s leads %s's sequences (%s)", name, dc.name, key)
					return true
				}
			}
		}
		return false
	})
	return leader, err
}

// waitClaimGone waits until dc's etcd no longer holds a claim on worker
// ID wid: its holder's lease has expired.
func (e *env) waitClaimGone(ctx context.Context, dc *datacenter, wid int64) error {
	key := fmt.Sprintf("/mig/workers/%02d", wid)
	err := e.poll(ctx, recoveryTimeout, "etcd dropping "+key, func() bool {
		_, ok, err := dc.etcdGet(ctx, key)
		return err == nil && !ok
	})
	if err == nil {
		e.tl.note("etcd "+dc.name, "worker ID %d's claim is gone: its lease expired", wid)
	}
	return err
}

// stepClock sets s's wall-clock offset to off and waits until its ID
// clock has counted the step in the metric counter (a step it did not see
// would make the scenario test nothing).
func (e *env) stepClock(ctx context.Context, s *slot, off time.Duration, counter string) error {
	before, err := e.metric(ctx, s, counter)
	if err != nil {
		return err
	}
	if err := s.setClockOffset(off); err != nil {
		return err
	}
	e.tl.note("runner", "set %s's wall clock offset to %v", s.name, off)
	err = e.poll(ctx, stepSeenTimeout, s.name+"'s ID clock counting the step ("+counter+")", func() bool {
		v, err := e.metric(ctx, s, counter)
		return err == nil && v > before
	})
	if err != nil {
		return err
	}
	if o, err := e.metric(ctx, s, "mig_clock_offset_seconds"); err == nil {
		e.tl.note(s.name, "its ID clock saw the step (%s); ID clock minus wall clock now %.3fs", counter, o)
	}
	return nil
}

// metric reads the value of an unlabelled metric from s's /metrics.
func (e *env) metric(ctx context.Context, s *slot, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := e.l.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no metric %s", s.name, name)
}
