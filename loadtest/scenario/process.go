package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/faultproxy"
)

// Supervision of the server processes.
const (
	// restartBackoff is how long the supervisor waits before starting a
	// process again after it exited unbidden: a server started while its
	// worker ID's old lease lives finds the range full and exits at once,
	// as it would under systemd's Restart=always.
	restartBackoff = 250 * time.Millisecond
	// maxStarts bounds the processes one slot may start in a scenario.
	maxStarts = 400
	// stopTimeout bounds a SIGTERM's clean shutdown before SIGKILL.
	stopTimeout = 15 * time.Second
	// maxLogLine bounds a server log line the runner reads.
	maxLogLine = 1 << 20
)

// slot is one place a `mig serve` process runs: a name, a datacenter, a
// fixed listening port (so the clients' endpoint lists never change), its
// own fault proxies to each etcd member, and its clock file. A process
// killed in a slot is restarted in the same slot. Safe for concurrent use.
type slot struct {
	d       *deployment
	name    string // "dc1-a"; also its sequence node name
	dc      *datacenter
	standby bool // not started with the deployment
	addr    string
	url     string
	proxies []*faultproxy.Proxy // one per member of its datacenter's etcd
	// seqProxies are one per member of the sequence cluster, by
	// datacenter index: delayed oneWay to the other datacenters' members.
	seqProxies []*faultproxy.Proxy
	clockFile  string
	logPath    string

	mu struct {
		sync.Mutex
		want   bool     // the runner wants it running: the supervisor restarts it
		proc   *process // the latest process, running or not
		starts int
	}
}

// process is one `mig serve` process.
type process struct {
	cmd      *exec.Cmd
	pid      int
	serving  chan struct{} // closed at its "serving" log line
	exited   chan struct{} // closed once it has exited and its log is read
	workerID atomic.Int64  // the worker ID it last claimed; -1 before
	err      error         // Wait's, once exited is closed
	servedAt atomic.Int64  // monotonic reading of the "serving" line
	// retry marks a process the supervisor started after another exited
	// unbidden. Until it serves, the timeline leaves out its start and
	// exit: a range that stays full for a lease's life makes a dozen.
	retry   bool
	retries int // how many retries came before it
}

// args returns the command line of a server in slot s.
func (s *slot) args() []string {
	d := s.d
	eps := make([]string, len(s.proxies))
	for i, p := range s.proxies {
		eps[i] = p.Addr()
	}
	// Its own datacenter's sequence member first (the etcd client spreads
	// its calls over all of them all the same).
	seqEps := []string{s.seqProxies[s.dc.index].Addr()}
	for i, p := range s.seqProxies {
		if i != s.dc.index {
			seqEps = append(seqEps, p.Addr())
		}
	}
	a := []string{"serve",
		"--dc", s.dc.name,
		"--workers", s.dc.workers,
		"--other-dcs", s.dc.others,
		"--etcd", strings.Join(eps, ","),
		"--seq-etcd", strings.Join(seqEps, ","),
		"--listen", s.addr,
		"--epoch", d.settings.Epoch,
		"--lease-ttl", leaseTTL.String(),
		"--lease-margin", leaseMargin.String(),
		"--etcd-timeout", etcdTimeout.String(),
		"--watermark-window", watermarkWindow.String(),
		"--seq-node", s.name,
		"--seq-lease-ttl", seqTTL.String(),
		"--seq-lease-margin", seqMargin.String(),
		"--seq-etcd-timeout", seqTimeout.String(),
		"--seq-activation-delay", activationDelay.String(),
		"--seq-rebalance-interval", rebalanceInterval.String(),
		"--shutdown-timeout", "5s",
		"--log-format", "json",
		"--log-level", "debug", // the sequence moves, releases and activations, for the evidence
		"--fault-clock-file", s.clockFile,
	}
	if via := d.net.viaFlag(s.dc.index); via != "" {
		a = append(a, "--fault-peer-via", via)
	}
	if d.ntp != nil {
		a = append(a, "--ntp-servers", d.ntp.Addr())
	}
	if d.settings.ClockRate != 1 {
		a = append(a, "--fault-clock-rate", fmt.Sprint(d.settings.ClockRate))
	}
	return a
}

// setClockOffset writes the offset the server in s adds to its wall
// clock; a running server picks it up within 100 ms, a restarted one at
// once. The write is atomic (a rename), so the server never reads half.
func (s *slot) setClockOffset(off time.Duration) error {
	tmp := s.clockFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(off.String()+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.clockFile)
}

// start makes the runner want s running and starts a process unless one
// runs already.
func (s *slot) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.want = true
	if p := s.mu.proc; p != nil && !closed(p.exited) {
		return
	}
	s.launchLocked(false)
}

// launchLocked starts a process in s and the goroutine that reads its log
// and supervises it; retry says the supervisor restarts it. The caller
// holds s.mu.
func (s *slot) launchLocked(retry bool) {
	d := s.d
	if s.mu.starts >= maxStarts {
		d.problem("%s: started %d times; not starting it again", s.name, s.mu.starts)
		s.mu.want = false
		return
	}
	s.mu.starts++
	p := &process{serving: make(chan struct{}), exited: make(chan struct{}), retry: retry}
	if prev := s.mu.proc; retry && prev != nil {
		p.retries = prev.retries + 1
	}
	p.workerID.Store(-1)
	p.cmd = exec.Command(d.cfg.Mig, s.args()...)
	p.cmd.Env = serverEnv()
	stderr, err := p.cmd.StderrPipe()
	if err == nil {
		err = p.cmd.Start()
	}
	if err != nil {
		d.problem("%s: cannot start %s: %v", s.name, d.cfg.Mig, err)
		s.mu.want = false
		p.err = err
		close(p.exited)
		s.mu.proc = p
		return
	}
	p.pid = p.cmd.Process.Pid
	s.mu.proc = p
	if !retry {
		d.tl.note(s.name, "started (pid %d)", p.pid)
	}
	d.wg.Go(func() { s.watch(p, stderr) })
}

// watch reads p's log until it exits, then restarts it after
// restartBackoff if the runner still wants s running and nothing else
// started a process in s meanwhile.
func (s *slot) watch(p *process, stderr io.Reader) {
	d := s.d
	s.readLog(p, stderr)
	p.err = p.cmd.Wait() // after the log is read: Wait closes the pipe
	close(p.exited)
	s.mu.Lock()
	want, current := s.mu.want, s.mu.proc == p
	s.mu.Unlock()
	how := "exited"
	if p.err != nil {
		how = "exited: " + p.err.Error()
	}
	if want && current {
		how += "; restarting it every " + restartBackoff.String() + " until it serves"
	}
	if !d.closing.Load() && !(p.retry && !closed(p.serving)) {
		d.tl.note(s.name, "pid %d %s", p.pid, how)
	}
	if !want || !current {
		return
	}
	if clock.Sleep(d.ctx, d.clk, restartBackoff) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.want && s.mu.proc == p {
		s.launchLocked(true)
	}
}

// logLine is what the runner reads of a server's JSON log line.
type logLine struct {
	Msg      string `json:"msg"`
	Addr     string `json:"addr"`
	WorkerID *int64 `json:"worker_id"`
	Reason   string `json:"reason"`
	Err      string `json:"err"`
	Offset   string `json:"offset"`
	Rate     any    `json:"rate"`
	Version  any    `json:"version"`
	Moves    any    `json:"moves"`
	Groups   any    `json:"groups"`
	Members  any    `json:"members"`
}

// readLog copies p's log to s's log file and puts the lines that tell a
// scenario's story on the timeline.
func (s *slot) readLog(p *process, stderr io.Reader) {
	d := s.d
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.problem("%s: log file: %v", s.name, err)
		f = nil
	}
	if f != nil {
		defer f.Close()
		fmt.Fprintf(f, "=== pid %d: %s %s\n", p.pid, d.cfg.Mig, strings.Join(s.args(), " "))
	}
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() {
		if f != nil {
			_, _ = f.Write(append(sc.Bytes(), '\n'))
		}
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.WorkerID != nil && (l.Msg == "serving" || l.Msg == "claimed worker ID") {
			p.workerID.Store(*l.WorkerID)
		}
		what := story(l)
		switch {
		case what == "":
		case l.Msg == "serving" && p.retries > 0:
			d.tl.note(s.name, "%s (pid %d, started again %d times)", what, p.pid, p.retries)
		case p.retry && !closed(p.serving) && l.Msg != "claimed worker ID":
			// A retry that has not served yet: its failure is the last
			// one's again, and its clock offset is the file's.
		default:
			d.tl.note(s.name, "%s", what)
		}
		if l.Msg == "serving" && !closed(p.serving) {
			p.servedAt.Store(int64(d.clk.Mono()))
			close(p.serving)
		}
	}
	// The rest of a line too long to scan, and whatever follows, is
	// drained so that the process never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, stderr)
}

// story says what a server's log line means for the timeline, or "" when
// it is not worth a line there.
func story(l logLine) string {
	wid := "?"
	if l.WorkerID != nil {
		wid = fmt.Sprint(*l.WorkerID)
	}
	switch l.Msg {
	case "serving":
		return "serving as worker " + wid
	case "claimed worker ID":
		return "claimed worker ID " + wid
	case "fenced: stopped issuing IDs":
		return "fenced worker ID " + wid + ": " + l.Reason
	case "released worker ID":
		return "released worker ID " + wid
	case "claiming a worker ID failed; retrying":
		return "cannot claim a worker ID yet: " + shorten(l.Err)
	case "seq facade: serving sequences":
		return "serving sequences (sole owner of its datacenter)"
	case "seq facade: lease lost: stopped serving", "seq facade: registration lost: stopped serving":
		return "stopped serving sequences: " + shorten(l.Err)
	case "seq facade: arbitrating the routing table":
		return "became the sequence arbiter"
	case "seq facade: stopped arbitrating":
		return "stopped arbitrating: " + shorten(l.Err)
	case "seq facade: routing table written":
		return fmt.Sprintf("wrote sequence routing table v%v: moves %v, %v members", l.Version, l.Moves, l.Members)
	case "seq facade: draining: waiting for the groups to be handed off":
		return fmt.Sprintf("draining its %v sequence groups", l.Groups)
	case "seq facade: drain incomplete; the groups left move when the node's lease is revoked, after their activation delay":
		return "sequence drain incomplete: " + shorten(l.Err)
	case "fault injection: wall clock offset":
		return "wall clock offset now " + l.Offset
	case "fault injection: the monotonic clock runs slow; self-fencing is broken on purpose":
		return fmt.Sprintf("BROKEN BUILD: monotonic clock at rate %v, self-fencing comes late", l.Rate)
	case "shutting down: finishing requests in flight":
		return "shutting down"
	case "mig serve failed":
		return "failed: " + shorten(l.Err)
	}
	return ""
}

func shorten(s string) string {
	const max = 160
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// kill sends SIGKILL to the process in s, as a crash would, and returns
// once it has exited; the supervisor does not restart it. It returns the
// process killed, or nil when none ran.
func (s *slot) kill() *process {
	return s.halt(syscall.SIGKILL)
}

// stop sends SIGTERM to the process in s and waits for its clean
// shutdown (SIGKILL after stopTimeout); the supervisor does not restart
// it.
func (s *slot) stop() *process {
	return s.halt(syscall.SIGTERM)
}

// signal sends sig to the process in s without waiting for it to exit;
// the supervisor does not restart it. Wait for it with waitExit.
func (s *slot) signal(sig syscall.Signal) *process {
	s.mu.Lock()
	s.mu.want = false
	p := s.mu.proc
	s.mu.Unlock()
	if p == nil || closed(p.exited) {
		return nil
	}
	what := "SIGTERM to"
	if sig == syscall.SIGKILL {
		what = "kill -9"
	}
	s.d.tl.note("runner", "%s %s (pid %d)", what, s.name, p.pid)
	_ = p.cmd.Process.Signal(sig) // an error means it has exited already
	return p
}

// waitExit waits for p (from signal) to exit, killing it after
// stopTimeout.
func (s *slot) waitExit(p *process) {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
	case <-s.d.clk.After(stopTimeout):
		s.d.problem("%s: pid %d did not stop within %v; killing it", s.name, p.pid, stopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (s *slot) halt(sig syscall.Signal) *process {
	p := s.signal(sig)
	s.waitExit(p)
	return p
}

// current returns the latest process of s (running or not), or nil.
func (s *slot) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.proc
}

// running reports whether a process runs in s now.
func (s *slot) running() bool {
	p := s.current()
	return p != nil && !closed(p.exited)
}

// workerID returns the worker ID the running process in s last claimed,
// or -1.
func (s *slot) workerID() int64 {
	if p := s.current(); p != nil && !closed(p.exited) {
		return p.workerID.Load()
	}
	return -1
}

// waitServing waits until a process of s started by now or later has
// logged "serving", through restarts by the supervisor, and returns when
// it did (a monotonic reading).
func (s *slot) waitServing(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	d := s.d
	deadline := d.clk.After(timeout)
	for {
		p := s.current()
		if p == nil {
			return 0, fmt.Errorf("%s was never started", s.name)
		}
		select {
		case <-p.serving:
			return time.Duration(p.servedAt.Load()), nil
		case <-p.exited:
			s.mu.Lock()
			want := s.mu.want
			s.mu.Unlock()
			if !want {
				return 0, fmt.Errorf("%s exited (%v) and is not being restarted", s.name, p.err)
			}
			// The supervisor starts the next one; look again shortly.
			select {
			case <-d.clk.After(restartBackoff / 5):
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-deadline:
				return 0, fmt.Errorf("%s not serving within %v", s.name, timeout)
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline:
			return 0, fmt.Errorf("%s not serving within %v", s.name, timeout)
		}
	}
}

// cut partitions s from every etcd member, its datacenter's and the
// sequence cluster's: every proxy between them stops forwarding, without
// closing a connection.
func (s *slot) cut() {
	for _, p := range append(s.proxies, s.seqProxies...) {
		p.Cut()
	}
}

// heal ends a cut.
func (s *slot) heal() {
	for _, p := range append(s.proxies, s.seqProxies...) {
		p.Restore()
	}
}

// serverEnv is the runner's environment without MIG_ variables: every
// flag of mig can be set from one, and the scenario's command lines must
// be the whole configuration.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MIG_") {
			env = append(env, kv)
		}
	}
	return env
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
