package scenario

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
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
		{Name: "kill", About: "kill -9 of a server (a sequence node), restarted after a pause; its groups' failover timed against the sequence lease TTL + 1 s", run: killScenario},
		{Name: "partition", About: "a server of dc1 (the sequence arbiter, if it is there) cut from every etcd member; once etcd has expired its worker-ID lease a replacement takes its worker ID; then healed", run: partitionScenario},
		{Name: "etcd-member", About: "the sequence cluster's leader member killed, then a second (quorum lost) together with dc1's own etcd; all restored", run: etcdMemberScenario},
		{Name: "clock-back", About: "a server's wall clock stepped back 5s; killed and restarted with the clock still behind", tolerance: -clockBack + checkSlack, run: clockBackScenario},
		{Name: "clock-forward-then-back", About: "a server's wall clock stepped forward 1h, then corrected", ahead: clockForward, run: clockForwardScenario},
		{Name: "clock-forward-held", About: "with an NTP check, a server's wall clock stepped forward 1h, then corrected", ntp: true, run: clockForwardHeldScenario},
		{Name: "rolling-restart", About: "every server of dc2 restarted (SIGTERM: drain and handoff), one by one; no sequence request may fail", run: rollingRestartScenario},
		{Name: "arbiter-loss", About: "a server leaves (SIGTERM: its groups are handed off), and at once the sequence arbiter is killed; both come back", run: arbiterLossScenario},
		{Name: "dc-loss", About: "every process of dc3 killed (its servers, its etcd, its sequence member, the cluster's leader); its groups served by the next datacenter of their lists; timed against the lease TTL + the election timeout + 1 s", run: dcLossScenario},
		{Name: "dc-partition", About: "dc3 cut from dc1 and dc2, both ways (sequence peers, clients, servers), then healed: its nodes stop serving sequences by their deadline, the others take over; IDs go on in every datacenter", run: dcPartitionScenario},
		{Name: "dc-return", About: "dc3 lost, then back: its groups return home in bounded rounds, each a handoff", run: dcReturnScenario},
	}
}

// killScenario: kill -9 of a server; the supervisor starts it again after
// the pause. While the dead server's lease lives its worker-ID range is
// full and the new process exits at once; the supervisor retries until
// it claims the ID, above the watermark its predecessor persisted. Its
// sequence groups move to the other nodes once it has put no
// confirmation for the lease TTL, and are served at once on the
// arbiter's vouching (docs/seq-failover.md, rule 6): the failover time of
// its uids is measured against the lease TTL + 1 s, the second for the
// new owners' loads and the clients' retries.
func killScenario(ctx context.Context, e *env) error {
	s := e.d.dcs[0].servers()[1]
	owned, err := e.uidsOwnedBy(ctx, s)
	if err != nil {
		return err
	}
	t0 := e.clk.Mono()
	s.kill()
	if len(owned) == 0 {
		e.tl.note("runner", "%s served none of the load's uids; no failover to time", s.name)
	} else if err := e.failover(ctx, t0, e.d.dcs[0], owned, fmt.Sprintf("failover of the %d uids %s served", len(owned), s.name),
		seqTTL+activationDelay, "bound: the sequence lease TTL + 1 s"); err != nil {
		return err
	}
	if err := e.sleep(ctx, max(0, e.dur-(e.clk.Mono()-t0))); err != nil {
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

// partitionScenario: a server of dc1 (the sequence arbiter, if it runs in
// dc1) is cut from every etcd member. It must stop issuing IDs
// (self-fence) before etcd can expire its lease, and stop serving
// sequences before its groups can move. The runner waits for etcd to
// drop its worker-ID claim, then starts a replacement in the standby
// slot, as an orchestrator replacing an unresponsive server would: the
// replacement claims the same worker ID and starts above its watermark
// while the old server still runs, cut off. Then the cut heals, the
// replacement stops, and the old server claims its ID again.
//
// This is the scenario a broken self-fence fails: the old server still
// answering after the replacement started gives that worker ID's IDs out
// of order.
func partitionScenario(ctx context.Context, e *env) error {
	dc := e.d.dcs[0]
	victim := dc.servers()[0]
	if arb, err := e.arbiter(ctx); err == nil && arb.dc == dc {
		victim = arb
	}
	wid := victim.workerID()
	t0 := e.clk.Mono()
	victim.cut()
	e.tl.note("runner", "cut %s (worker ID %d) from its etcd and every sequence member", victim.name, wid)
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

// etcdMemberScenario: the sequence cluster's leader member is killed; the
// others elect a new leader and every node, whose --seq-etcd names every
// member, goes on. After half the duration a second member is killed, so
// the sequence cluster loses quorum: every node must stop serving
// sequences within its right (activation delay - margin) of its last
// confirmation; and dc1's own etcd is killed with it: dc1's servers must
// fence their worker IDs, and dc1's ID clients fail over to the other
// datacenters. After the duration everything comes back.
func etcdMemberScenario(ctx context.Context, e *env) error {
	first := max(e.d.seq.Leader(), 0)
	if err := e.d.seq.Stop(first); err != nil {
		return err
	}
	e.tl.note("etcd seq", "member m%d (%s) killed (it was the leader); 2 of 3 left", first, dcName(first))
	if err := e.sleep(ctx, e.dur/2); err != nil {
		return err
	}
	second := (first + 1) % datacenters
	if err := e.d.seq.Stop(second); err != nil {
		return err
	}
	e.tl.note("etcd seq", "member m%d (%s) killed: quorum lost", second, dcName(second))
	dc := e.d.dcs[0]
	for i := range workerEtcdMembers {
		if err := dc.etcd.Stop(i); err != nil {
			return err
		}
	}
	e.tl.note("etcd "+dc.name, "every member killed: dc1's worker IDs have no etcd")
	if err := e.sleep(ctx, e.dur); err != nil {
		return err
	}
	t := e.clk.Mono()
	rctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	if err := e.d.seq.Restart(rctx, first, second); err != nil {
		return fmt.Errorf("restarting sequence members: %w", err)
	}
	e.tl.note("etcd seq", "members m%d and m%d restarted: quorum back", first, second)
	if err := dc.etcd.Restart(rctx, allMembers()...); err != nil {
		return fmt.Errorf("restarting the etcd of %s: %w", dc.name, err)
	}
	e.tl.note("etcd "+dc.name, "restarted")
	for _, s := range dc.servers() {
		if err := e.waitAnswering(ctx, s, t); err != nil {
			return err
		}
	}
	_, err := e.waitUIDs(ctx, t)
	return err
}

func allMembers() []int {
	var ids []int
	for i := range workerEtcdMembers {
		ids = append(ids, i)
	}
	return ids
}

// clockBackScenario: a server's wall clock steps back 5 s. Its ID clock
// must not follow: it slews (runs slower) until the wall clock catches
// up. Halfway, the server is killed and restarted with its clock still
// behind: the new process must start above the watermark the old one
// persisted, not at its wall clock.
func clockBackScenario(ctx context.Context, e *env) error {
	s := e.d.dcs[0].servers()[1]
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

// clockForwardHeldScenario: as clockForwardScenario, with every server
// checking its clock against NTP. The ID clock holds the step, the check
// runs at once and finds the stepped clock wrong, and the server goes on
// issuing, on time, dated by its monotonic clock: the checker's Ahead
// bound is not widened, and no request may fail. The correction undoes
// the hold.
func clockForwardHeldScenario(ctx context.Context, e *env) error {
	s := e.d.dcs[1].servers()[1]
	failed := e.l.ids.failed.Load()
	if err := e.stepClock(ctx, s, clockForward, "mig_clock_steps_forward_total"); err != nil {
		return err
	}
	if err := e.waitMetric(ctx, s, "mig_ntp_steps_refuted_total", "the NTP check refuting the step", func(v float64) bool { return v > 0 }); err != nil {
		return err
	}
	held, err := e.metric(ctx, s, "mig_clock_held_step_seconds")
	if err != nil {
		return err
	}
	e.tl.note(s.name, "the NTP check refuted the step; its ID clock holds %.3fs of it", held)
	if held < clockForward.Seconds()-1 {
		e.d.problem("%s holds %.3fs of a %v step the NTP check refuted", s.name, held, clockForward)
	}
	if err := e.sleep(ctx, e.dur/2); err != nil {
		return err
	}
	t := e.clk.Mono()
	if err := e.stepClock(ctx, s, 0, "mig_clock_steps_back_total"); err != nil {
		return err
	}
	if err := e.waitMetric(ctx, s, "mig_clock_held_step_seconds", "the correction undoing the hold", func(v float64) bool { return v == 0 }); err != nil {
		return err
	}
	if err := e.waitAnswering(ctx, s, t); err != nil {
		return err
	}
	if err := e.sleep(ctx, e.dur/2); err != nil {
		return err
	}
	if n := e.l.ids.failed.Load() - failed; n > 0 {
		e.d.problem("%d ID requests failed while a wrong step was held", n)
	}
	return nil
}

// rollingRestartScenario: every server of dc2 gets SIGTERM and is started
// again once it has exited, one after the other, a third of the duration
// apart. A clean shutdown persists the last tick issued and revokes the
// worker ID's lease, so each restart claims again at once and continues
// above it; and it drains its sequence groups first: each is handed off
// (the node stops, records its release, the next owner serves at once),
// so no sequence request fails and no uid waits for an activation delay.
// The longest wait of a uid, over every client, is measured against 100
// ms.
func rollingRestartScenario(ctx context.Context, e *env) error {
	win := e.l.openWindow()
	failed := e.l.seqs.failed.Load() + e.l.curl.failed.Load()
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
		if err := e.sleep(ctx, max(e.dur/3, 2*rebalanceInterval)); err != nil {
			return err
		}
	}
	e.uidWaits("rolling restart", win, 0.1, "target: 100 ms, a handoff's")
	n := e.l.seqs.failed.Load() + e.l.curl.failed.Load() - failed
	e.figure(Figure{Name: "sequence requests that failed during the rolling restart", Value: float64(n), Note: "a count, not seconds; target 0"})
	if n > 0 {
		e.tl.note("runner", "NOTE: %d sequence requests failed during a rolling restart, which should hand every group off", n)
	}
	return nil
}

// arbiterLossScenario: a server that is not the sequence arbiter leaves
// (SIGTERM: it hands its groups of sections over, and the arbiter writes a
// table that moves them), and at once, while that rebalance is under way,
// the arbiter is killed (kill -9). Another node must win the arbiter role
// and finish the job; the leaver's groups are handed off and the
// arbiter's served again elsewhere, after its lease and the activation
// delay, without a uid going back. After the pause both servers come
// back and the groups spread again.
func arbiterLossScenario(ctx context.Context, e *env) error {
	arb, err := e.arbiter(ctx)
	if err != nil {
		return err
	}
	var leaver *slot
	for _, s := range arb.dc.servers() {
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
	_, err = e.waitUIDs(ctx, t)
	return err
}

// dcLossScenario: the sequence cluster's leader moves to dc3, then every
// process of dc3 is killed at once: its servers, its own etcd and its
// sequence member, and its clients go quiet (its links are cut). The
// sequence cluster elects a new leader; the dead nodes' registrations
// expire; the arbiter (a new one, if it was in dc3) gives dc3's groups to
// the next datacenter of their lists, whose nodes serve them after the
// activation delay. The time until every uid answers again is measured
// against the lease TTL + the election timeout + 1 s. After the duration
// dc3 comes back.
func dcLossScenario(ctx context.Context, e *env) error {
	dc := e.d.dcs[2]
	if err := e.moveSeqLeader(ctx, dc); err != nil {
		return err
	}
	t0 := e.loseDC(dc)
	if err := e.failover(ctx, t0, e.d.dcs[0], e.allUIDs(), "every uid answers again after the loss of "+dc.name,
		seqTTL+seqElection+time.Second, "bound: the sequence lease TTL + the sequence cluster's election timeout + 1 s"); err != nil {
		return err
	}
	if err := e.sleep(ctx, max(0, e.dur-(e.clk.Mono()-t0))); err != nil {
		return err
	}
	_, err := e.restoreDC(ctx, dc)
	return err
}

// dcPartitionScenario: the sequence cluster's leader moves to dc3, then
// dc3 is cut from dc1 and dc2, both ways: its sequence member's peer
// traffic, its servers' paths to the other members and servers, the
// other servers' paths to its member and servers, and the clients' on
// either side. dc3's nodes can no longer confirm the table: they must stop
// serving sequences within their right (activation delay - margin) of
// their last confirmation, and a request from a dc3 client sent after
// that must not be answered. On the majority side their registrations
// expire and the arbiter gives their groups to the next datacenter of
// each list. IDs go on being issued in every datacenter, each on its own
// etcd. After the duration the cut heals.
func dcPartitionScenario(ctx context.Context, e *env) error {
	dc := e.d.dcs[2]
	if err := e.moveSeqLeader(ctx, dc); err != nil {
		return err
	}
	t0 := e.isolate(dc, true)
	if err := e.failover(ctx, t0, e.d.dcs[0], e.uidsHomedIn(dc), "every uid homed in "+dc.name+" served again on the other side",
		seqTTL+seqElection+time.Second, "bound: the sequence lease TTL + the sequence cluster's election timeout + 1 s"); err != nil {
		return err
	}
	if err := e.sleep(ctx, max(0, e.dur-(e.clk.Mono()-t0))); err != nil {
		return err
	}
	// What dc3's clients got during the cut: only dc3's nodes were
	// within their reach.
	right := activationDelay - seqMargin
	lastSent, n := e.l.lastAnswerSentAfter(dc.index, t0)
	if n == 0 {
		e.tl.note("runner", "no sequence request of a %s client was answered after the cut", dc.name)
	} else {
		e.figure(Figure{Name: fmt.Sprintf("the last sequence request of a %s client answered was sent after the cut", dc.name), Value: (lastSent - t0).Seconds(),
			Bound: right.Seconds(), Note: fmt.Sprintf("%d answered in all; bound: a confirmation's right (activation delay - margin), which no node may serve past", n)})
		if lastSent-t0 > right+cutSlack {
			e.d.problem("a %s client's sequence request sent %.3fs after the cut was answered: past every node's right (%v)", dc.name, (lastSent - t0).Seconds(), right)
		}
	}
	e.isolate(dc, false)
	return nil
}

// cutSlack allows for the time the runner takes to cut every proxy.
const cutSlack = 50 * time.Millisecond

// dcReturnScenario: dc3 is lost as in dc-loss; after the duration its
// etcd members and servers come back. Its nodes register anew, and the
// arbiter moves dc3's groups home in planned rounds (at most 16 groups a
// round, a round every second here), each a handoff: the owner in dc1 or
// dc2 stops, records its release, and dc3's node serves at once. The time
// until all are home, and the longest wait of each uid meanwhile, are
// measured.
func dcReturnScenario(ctx context.Context, e *env) error {
	dc := e.d.dcs[2]
	t0 := e.loseDC(dc)
	if _, err := e.waitUIDs(ctx, t0); err != nil {
		return err
	}
	if err := e.sleep(ctx, max(0, e.dur-(e.clk.Mono()-t0))); err != nil {
		return err
	}
	t1, err := e.restoreDC(ctx, dc)
	if err != nil {
		return err
	}
	win := e.l.openWindow()
	home := 0
	tables := map[uint64]bool{}
	err = e.poll(ctx, recoveryTimeout+time.Duration(seqGroups/16)*rebalanceInterval, "every group of "+dc.name+" home", func() bool {
		owners, v, err := e.d.owners(ctx)
		if err != nil {
			return false
		}
		n := 0
		for g, o := range owners {
			if e.d.homeOf(g) == dc.index {
				if s := e.d.slotNamed(o); s != nil && s.dc == dc {
					n++
				}
			}
		}
		if n != home {
			tables[v] = true
			home = n
		}
		return n == e.d.homes[dc.index].Last-e.d.homes[dc.index].First+1
	})
	if err != nil {
		return err
	}
	e.figure(Figure{Name: fmt.Sprintf("every group of %s home (%d groups)", dc.name, home), Value: (e.clk.Mono() - t1).Seconds(),
		Note: fmt.Sprintf("from its restart; seen in %d routing tables, at most 16 groups a round, a round every %v", len(tables), rebalanceInterval)})
	if err := e.sleep(ctx, rebalanceInterval); err != nil {
		return err
	}
	e.uidWaits("the return of "+dc.name, win, 0, "")
	return nil
}

// loseDC kills every process of dc at once, cuts its clients off, and
// returns when it began.
func (e *env) loseDC(dc *datacenter) time.Duration {
	t0 := e.clk.Mono()
	var ps []*process
	for _, s := range dc.servers() {
		ps = append(ps, s.signal(syscall.SIGKILL))
	}
	for i := range workerEtcdMembers {
		_ = dc.etcd.Stop(i)
	}
	_ = e.d.seq.Stop(dc.seqMember)
	e.d.net.isolate(dc.index, dc.seqID, true) // its clients die with it
	for k, s := range dc.servers() {
		s.waitExit(ps[k])
	}
	e.tl.note("runner", "%s lost: its servers, its etcd and its sequence member killed, its clients cut off", dc.name)
	return t0
}

// restoreDC brings dc back after loseDC: its etcd, its sequence member,
// its network and its servers. It returns when it began.
func (e *env) restoreDC(ctx context.Context, dc *datacenter) (time.Duration, error) {
	t := e.clk.Mono()
	rctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	// The network first: the sequence member is ready only once it has
	// reached its peers.
	e.d.net.isolate(dc.index, dc.seqID, false)
	if err := e.d.seq.Restart(rctx, dc.seqMember); err != nil {
		return t, fmt.Errorf("restarting %s's sequence member: %w", dc.name, err)
	}
	if err := dc.etcd.Restart(rctx, allMembers()...); err != nil {
		return t, fmt.Errorf("restarting %s's etcd: %w", dc.name, err)
	}
	e.tl.note("runner", "%s back: its etcd and sequence member restarted; starting its servers", dc.name)
	for _, s := range dc.servers() {
		s.start()
	}
	for _, s := range dc.servers() {
		if _, err := s.waitServing(ctx, recoveryTimeout); err != nil {
			return t, err
		}
	}
	return t, nil
}

// isolate cuts dc from every other datacenter, both ways (or heals the
// cut), and returns when it began.
func (e *env) isolate(dc *datacenter, cut bool) time.Duration {
	t := e.clk.Mono()
	e.d.net.isolate(dc.index, dc.seqID, cut)
	for _, s := range e.d.slots {
		for j, p := range s.seqProxies {
			if (s.dc == dc) != (j == dc.index) { // crosses the cut
				if cut {
					p.Cut()
				} else {
					p.Restore()
				}
			}
		}
	}
	if cut {
		e.tl.note("runner", "cut %s from the other datacenters, both ways", dc.name)
	} else {
		e.tl.note("runner", "healed %s's cut", dc.name)
	}
	return t
}

// moveSeqLeader makes dc's member the sequence cluster's leader, so that
// losing dc costs an election too.
func (e *env) moveSeqLeader(ctx context.Context, dc *datacenter) error {
	err := e.poll(ctx, recoveryTimeout, "moving the sequence leader to "+dc.name, func() bool {
		l := e.d.seq.Leader()
		if l == dc.seqMember {
			return true
		}
		if l < 0 {
			return false
		}
		id, err := strconv.ParseUint(dc.seqID, 16, 64)
		if err != nil {
			return false
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.d.seq.Endpoints()[l]}, DialTimeout: runnerEtcdTimeout, Logger: zap.NewNop()})
		if err != nil {
			return false
		}
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, runnerEtcdTimeout)
		defer cancel()
		_, err = cli.MoveLeader(cctx, id)
		return err == nil && e.d.seq.Leader() == dc.seqMember
	})
	if err == nil {
		e.tl.note("etcd seq", "leader moved to %s's member", dc.name)
	}
	return err
}

// uidsOwnedBy returns the indices of the load's uids whose group s owns.
func (e *env) uidsOwnedBy(ctx context.Context, s *slot) ([]int, error) {
	owners, _, err := e.d.owners(ctx)
	if err != nil {
		return nil, err
	}
	var out []int
	for k, u := range e.l.uids {
		if owners[groupOf(u)] == s.name {
			out = append(out, k)
		}
	}
	return out, nil
}

func (e *env) uidsHomedIn(dc *datacenter) []int {
	var out []int
	for k, h := range e.l.home {
		if h == dc.index {
			out = append(out, k)
		}
	}
	return out
}

// failover times the return of uids (indices) after a fault struck them
// at t0, twice: as a caller of datacenter from that asks each uid from
// then on until it is answered (askUntilAnswered), the figure held to
// bound; and as the steady load saw it (firstAnswers), whose clients
// draw uids at random, so that its figure adds the wait for a draw.
func (e *env) failover(ctx context.Context, t0 time.Duration, from *datacenter, uids []int, name string, bound time.Duration, note string) error {
	if e.cfg.NoSeq || len(uids) == 0 {
		return nil
	}
	last, err := e.l.askUntilAnswered(ctx, from.index, uids, recoveryTimeout)
	if err != nil {
		return err
	}
	e.tl.noteAt(last, "load", "a caller asking from %s has had an answer for each of %d uids", from.name, len(uids))
	e.figure(Figure{Name: name + " (a caller asking each uid from the fault on)", Value: (last - t0).Seconds(), Bound: bound.Seconds(), Note: note})
	load, err := e.firstAnswers(ctx, t0, uids)
	if err != nil {
		return err
	}
	e.figure(Figure{Name: name + " (the steady load, drawing uids at random)", Value: (load - t0).Seconds(),
		Note: "not held to the bound: a uid not drawn for a while counts as waiting until it is"})
	return nil
}

// allUIDs returns the index of every uid of the load.
func (e *env) allUIDs() []int {
	all := make([]int, len(e.l.uids))
	for k := range all {
		all[k] = k
	}
	return all
}

// firstAnswers waits until each uid of uids (indices) was answered to a
// request sent after since, and returns when the last was.
func (e *env) firstAnswers(ctx context.Context, since time.Duration, uids []int) (time.Duration, error) {
	var last time.Duration
	err := e.poll(ctx, recoveryTimeout, fmt.Sprintf("%d uids answered again", len(uids)), func() bool {
		last = since
		for _, k := range uids {
			at, ok := e.l.seqAll[k].firstAnswerAfter(since)
			if !ok {
				return false
			}
			last = max(last, at)
		}
		return true
	})
	return last, err
}

// uidWaits reports the longest wait of every uid in a window, against
// bound (0: none).
func (e *env) uidWaits(what string, win []*tracker, bound float64, note string) {
	now := e.clk.Mono()
	var worst ServerStats
	var sum float64
	for _, t := range win {
		st := t.stats(now)
		sum += st.LongestUnavailable
		if st.LongestUnavailable >= worst.LongestUnavailable {
			worst = st
		}
	}
	e.figure(Figure{Name: fmt.Sprintf("longest wait of a uid during %s (%s; mean of the uids' longest %.3fs)", what, worst.Name, sum/float64(len(win))),
		Value: worst.LongestUnavailable, Bound: bound, Note: note})
}

// retire stops the server in s for good (SIGTERM): the load no longer
// counts its failures as unavailability.
func (e *env) retire(s *slot) {
	s.stop()
	e.l.server[slices.Index(e.d.slots, s)].retire(e.clk.Mono())
}

// arbiter returns the server that holds the sequence arbiter role
// (<prefix>/seq/arbiter holds its node name, which is its slot's name).
func (e *env) arbiter(ctx context.Context) (*slot, error) {
	var arb *slot
	err := e.poll(ctx, recoveryTimeout, "the sequence arbiter in etcd", func() bool {
		name, ok, err := etcdGet(ctx, e.d.seqCli, "/mig/seq/arbiter")
		if err == nil && ok {
			arb = e.d.slotNamed(name)
		}
		return arb != nil
	})
	if err == nil {
		e.tl.note("runner", "%s is the sequence arbiter", arb.name)
	}
	return arb, err
}

// waitClaimGone waits until dc's etcd no longer holds a claim on worker
// ID wid: its holder's lease has expired.
func (e *env) waitClaimGone(ctx context.Context, dc *datacenter, wid int64) error {
	key := fmt.Sprintf("/mig/workers/%02d", wid)
	err := e.poll(ctx, recoveryTimeout, "etcd dropping "+key, func() bool {
		_, ok, err := etcdGet(ctx, dc.cli, key)
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

// waitMetric waits, at most stepSeenTimeout, for s's metric name to
// satisfy ok.
func (e *env) waitMetric(ctx context.Context, s *slot, name, what string, ok func(float64) bool) error {
	return e.poll(ctx, stepSeenTimeout, s.name+": "+what+" ("+name+")", func() bool {
		v, err := e.metric(ctx, s, name)
		return err == nil && ok(v)
	})
}

// metric reads the value of an unlabelled metric from s's /metrics.
func (e *env) metric(ctx context.Context, s *slot, name string) (float64, error) {
	return metric(ctx, e.l.dcHTTP[s.dc.index], s, name)
}
