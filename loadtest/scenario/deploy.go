package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdcluster"
	"github.com/migsvc/mig/internal/fakentp"
	"github.com/migsvc/mig/internal/faultproxy"
	"github.com/migsvc/mig/seqfacade"
)

// The shape of the deployment.
const (
	// datacenters of serversPerDC servers each, plus a standby slot in
	// the first (the partition scenario's replacement).
	datacenters  = 3
	serversPerDC = 2
	// workerEtcdMembers is the size of each datacenter's own etcd, which
	// holds its worker IDs: one member (a datacenter's etcd losing quorum
	// is the etcd-member scenario's second half).
	workerEtcdMembers = 1
	// oneWay is the latency between two datacenters, each way: a 40 ms
	// round trip, Tokyo to Singapore or so.
	oneWay = 20 * time.Millisecond
	// seqHeartbeat and seqElection tune the sequence cluster for that
	// round trip, as etcd's tuning guide says: a heartbeat about the
	// round trip, an election timeout about ten.
	seqHeartbeat = 2 * oneWay
	seqElection  = 20 * oneWay
	// runnerEtcdTimeout bounds each etcd call the runner makes itself.
	runnerEtcdTimeout = 2 * time.Second
	// startTimeout bounds starting the deployment: etcd, then every server.
	startTimeout = 90 * time.Second
	// peerHeader is the header by which etcd names the member that sent a
	// peer request; the peer proxies tag connections with it.
	peerHeader = "X-Server-From"
)

// datacenter is one datacenter of the deployment.
type datacenter struct {
	name    string // "dc1"
	index   int
	workers string // its worker-ID range, "0-1"
	others  string // the other datacenters' ranges, for --other-dcs
	etcd    *etcdcluster.Cluster
	cli     *clientv3.Client // the runner's own, straight to its etcd
	logFile *os.File         // etcd's log
	slots   []*slot          // its servers, then its standby slot if any
	// seqMember is this datacenter's member of the sequence cluster, and
	// seqID that member's ID as etcd's peer requests name it (hex).
	seqMember int
	seqID     string
}

// servers returns the datacenter's regular slots (without the standby).
func (dc *datacenter) servers() []*slot { return dc.slots[:serversPerDC] }

// standby returns the slot a scenario may start a replacement server in,
// or nil.
func (dc *datacenter) standby() *slot {
	if len(dc.slots) > serversPerDC {
		return dc.slots[serversPerDC]
	}
	return nil
}

// deployment is the local deployment a scenario runs against: etcd
// clusters in this process, servers as processes of their own.
type deployment struct {
	cfg      Config
	settings Settings
	clk      clock.Source
	tl       *timeline
	dir      string
	dcs      []*datacenter
	slots    []*slot // every slot, in endpoint order
	homes    seqfacade.Homes
	net      *network

	ntp        *fakentp.Server      // what the servers check their clocks against; nil without Settings.NTPCheck
	seq        *etcdcluster.Cluster // the sequence cluster, one member a datacenter
	seqCli     *clientv3.Client     // the runner's own, to every member
	seqLogFile *os.File

	ctx     context.Context // cancelled by close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every goroutine watching a process
	closing atomic.Bool    // set by close: exits are no longer news

	mu struct {
		sync.Mutex
		problems []string
	}
}

// problem records something that kept the scenario from doing what it
// meant to do (a server that never came back, say). A run with problems
// fails even when the checker found nothing.
func (d *deployment) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.tl.note("runner", "PROBLEM: %s", msg)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.mu.problems) < 100 {
		d.mu.problems = append(d.mu.problems, msg)
	}
}

func (d *deployment) problems() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.mu.problems...)
}

// startDeployment starts the etcd clusters, the proxies and every regular
// server, and returns once each server has logged "serving". On error it
// leaves nothing running.
func startDeployment(ctx context.Context, cfg Config, s Settings, clk clock.Source, tl *timeline, dir string) (_ *deployment, err error) {
	d := &deployment{cfg: cfg, settings: s, clk: clk, tl: tl, dir: dir, net: newNetwork()}
	d.ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	ranges := make([]string, datacenters)
	var names []string
	for i := range ranges {
		first := i * (serversPerDC + 1)
		ranges[i] = fmt.Sprintf("%d-%d", first, first+serversPerDC)
		names = append(names, dcName(i))
	}
	d.homes = seqfacade.EvenHomes(seqGroups, names)
	// The servers' ports stay reserved (listened on) until the servers
	// start: etcd and the proxies pick free ports of their own meanwhile,
	// and must not pick these.
	nslots := datacenters*serversPerDC + 1
	ports, release, err := reservePorts(nslots)
	if err != nil {
		return nil, err
	}
	defer release()
	if s.NTPCheck {
		if d.ntp, err = fakentp.Start(0); err != nil {
			return nil, fmt.Errorf("%w: the fake NTP server: %v", ErrSetup, err)
		}
	}
	if err := d.startSeqEtcd(ctx); err != nil {
		return nil, err
	}
	next := 0
	for i := range datacenters {
		dc := &datacenter{name: dcName(i), index: i, workers: ranges[i], seqMember: i}
		var others []string
		for j := range datacenters {
			if j != i {
				others = append(others, fmt.Sprintf("%s=%s", dcName(j), ranges[j]))
			}
		}
		dc.others = strings.Join(others, ",")
		d.dcs = append(d.dcs, dc)
		if err := d.startEtcd(ctx, dc); err != nil {
			return nil, err
		}
		n := serversPerDC
		if i == 0 {
			n++ // the standby
		}
		for k := range n {
			sl := &slot{
				d:       d,
				name:    fmt.Sprintf("%s-%c", dc.name, 'a'+k),
				dc:      dc,
				standby: k == serversPerDC,
				addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[next])),
			}
			next++
			if sl.standby {
				sl.name = dc.name + "-standby"
			}
			sl.url = "http://" + sl.addr
			sl.clockFile = filepath.Join(dir, sl.name+".clock")
			sl.logPath = filepath.Join(dir, sl.name+".log")
			if err := sl.setClockOffset(0); err != nil {
				return nil, err
			}
			dc.slots = append(dc.slots, sl)
			d.slots = append(d.slots, sl)
		}
	}
	if err := d.seqMemberIDs(ctx); err != nil {
		return nil, err
	}
	for _, sl := range d.slots {
		if err := d.proxyServer(sl); err != nil {
			return nil, err
		}
	}
	for _, sl := range d.slots {
		for _, dc := range d.dcs {
			if dc != sl.dc {
				if _, err := d.net.link(dc.index, sl.dc.index, sl.addr); err != nil {
					return nil, err
				}
			}
		}
	}
	release()
	tl.note("runner", "%d datacenters of %d servers, %v each way between them; each datacenter on its own %d-member etcd for worker IDs and one member of the sequence cluster (heartbeat %v, election %v)",
		datacenters, serversPerDC, oneWay, workerEtcdMembers, seqHeartbeat, seqElection)
	for _, dc := range d.dcs {
		for _, sl := range dc.servers() {
			sl.start()
		}
	}
	for _, sl := range d.slots {
		if sl.standby {
			continue
		}
		if _, err := sl.waitServing(ctx, startTimeout); err != nil {
			return nil, fmt.Errorf("%w: %v (its log: %s)", ErrSetup, err, sl.logPath)
		}
	}
	return d, nil
}

func dcName(i int) string { return fmt.Sprintf("dc%d", i+1) }

// startSeqEtcd starts the sequence cluster: one member a datacenter, each
// advertising to the others a proxy in front of its peer port that delays
// every byte oneWay and tags connections by the member that opened them.
func (d *deployment) startSeqEtcd(ctx context.Context) error {
	f, err := os.OpenFile(filepath.Join(d.dir, "etcd-seq.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	d.seqLogFile = f
	lg := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(f), zapcore.WarnLevel))
	advertise := func(i int, peer string) (string, error) {
		p, err := faultproxy.New(peer, faultproxy.WithSourceHeader(peerHeader))
		if err != nil {
			return "", err
		}
		p.Delay(oneWay)
		d.net.setPeer(i, p)
		return p.Addr(), nil
	}
	c, err := etcdcluster.Start(ctx, filepath.Join(d.dir, "etcd-seq"), datacenters,
		etcdcluster.WithTiming(seqHeartbeat, seqElection), etcdcluster.WithLogger(lg), etcdcluster.WithPeerAdvertise(advertise))
	if err != nil {
		return fmt.Errorf("%w: the sequence cluster: %v", ErrSetup, err)
	}
	d.seq = c
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: runnerEtcdTimeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("%w: sequence etcd client: %v", ErrSetup, err)
	}
	d.seqCli = cli
	d.tl.note("etcd seq", "members at %s; the others reach each through a proxy %v each way", strings.Join(c.Endpoints(), ", "), oneWay)
	return nil
}

// seqMemberIDs learns each sequence member's ID, which the peer proxies
// tag its connections with.
func (d *deployment) seqMemberIDs(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, runnerEtcdTimeout)
	defer cancel()
	r, err := d.seqCli.MemberList(cctx)
	if err != nil {
		return fmt.Errorf("%w: listing the sequence members: %v", ErrSetup, err)
	}
	for _, m := range r.Members {
		for _, dc := range d.dcs {
			if m.Name == fmt.Sprintf("m%d", dc.seqMember) {
				dc.seqID = strconv.FormatUint(m.ID, 16)
			}
		}
	}
	for _, dc := range d.dcs {
		if dc.seqID == "" {
			return fmt.Errorf("%w: no ID for %s's sequence member", ErrSetup, dc.name)
		}
	}
	return nil
}

// startEtcd starts dc's own etcd and the runner's client of it.
func (d *deployment) startEtcd(ctx context.Context, dc *datacenter) error {
	logPath := filepath.Join(d.dir, "etcd-"+dc.name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	dc.logFile = f // closed after the cluster, which logs until it stops
	lg := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(f), zapcore.WarnLevel))
	c, err := etcdcluster.Start(ctx, filepath.Join(d.dir, "etcd-"+dc.name), workerEtcdMembers, etcdcluster.WithLogger(lg))
	if err != nil {
		return fmt.Errorf("%w: etcd of %s: %v", ErrSetup, dc.name, err)
	}
	dc.etcd = c
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: runnerEtcdTimeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("%w: etcd client of %s: %v", ErrSetup, dc.name, err)
	}
	dc.cli = cli
	d.tl.note("etcd "+dc.name, "%d member(s) at %s", workerEtcdMembers, strings.Join(c.Endpoints(), ", "))
	return nil
}

// proxyServer gives slot s its proxies: one to each member of its
// datacenter's etcd, and one to each member of the sequence cluster
// (delayed oneWay to the members of other datacenters), so that one
// server can be cut off alone.
func (d *deployment) proxyServer(s *slot) error {
	for _, ep := range s.dc.etcd.Endpoints() {
		p, err := proxyTo(ep)
		if err != nil {
			return err
		}
		s.proxies = append(s.proxies, p)
	}
	for _, dc := range d.dcs {
		p, err := proxyTo(d.seq.Endpoints()[dc.seqMember])
		if err != nil {
			return err
		}
		if dc != s.dc {
			p.Delay(oneWay)
		}
		s.seqProxies = append(s.seqProxies, p)
	}
	return nil
}

func proxyTo(endpoint string) (*faultproxy.Proxy, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	p, err := faultproxy.New(u.Host)
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: %w", u.Host, err)
	}
	return p, nil
}

// close stops everything: the servers (SIGKILL: the run is over), the
// proxies, the runner's etcd clients, then the etcd clusters.
func (d *deployment) close() {
	d.closing.Store(true)
	var wg sync.WaitGroup
	for _, sl := range d.slots {
		wg.Go(func() {
			sl.mu.Lock()
			sl.mu.want = false
			p := sl.mu.proc
			sl.mu.Unlock()
			if p != nil && !closed(p.exited) {
				_ = p.cmd.Process.Kill()
			}
		})
	}
	wg.Wait()
	d.cancel()
	d.wg.Wait()
	for _, sl := range d.slots {
		for _, p := range append(sl.proxies, sl.seqProxies...) {
			p.Close()
		}
	}
	d.net.close()
	if d.ntp != nil {
		d.ntp.Close()
	}
	for _, dc := range d.dcs {
		if dc.cli != nil {
			_ = dc.cli.Close()
		}
		if dc.etcd != nil {
			dc.etcd.Close()
		}
		if dc.logFile != nil {
			_ = dc.logFile.Close()
		}
	}
	if d.seqCli != nil {
		_ = d.seqCli.Close()
	}
	if d.seq != nil {
		d.seq.Close()
	}
	if d.seqLogFile != nil {
		_ = d.seqLogFile.Close()
	}
}

// etcdGet reads key from cli: its value, or ok false when absent.
func etcdGet(ctx context.Context, cli *clientv3.Client, key string) (val string, ok bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, runnerEtcdTimeout)
	defer cancel()
	r, err := cli.Get(cctx, key)
	if err != nil {
		return "", false, err
	}
	if len(r.Kvs) == 0 {
		return "", false, nil
	}
	return string(r.Kvs[0].Value), true, nil
}

// slotNamed returns the slot named name, or nil.
func (d *deployment) slotNamed(name string) *slot {
	for _, s := range d.slots {
		if s.name == name {
			return s
		}
	}
	return nil
}

// homeOf returns the index of the datacenter that is home to group g.
func (d *deployment) homeOf(g int) int {
	for _, h := range d.homes {
		if g >= h.First && g <= h.Last {
			for _, dc := range d.dcs {
				if dc.name == h.Datacenters[0] {
					return dc.index
				}
			}
		}
	}
	return -1
}

// routing is what the runner reads of the sequence routing table.
type routing struct {
	Version uint64 `json:"version"`
	Ranges  []struct {
		First int    `json:"first"`
		Last  int    `json:"last"`
		Owner string `json:"owner"`
	} `json:"ranges"`
}

// owners returns the routing table's owner of every group (a node name,
// which is a slot name; "" for none) and its version.
func (d *deployment) owners(ctx context.Context) ([]string, uint64, error) {
	v, ok, err := etcdGet(ctx, d.seqCli, "/mig/seq/routing")
	if err != nil || !ok {
		return nil, 0, fmt.Errorf("reading the routing table: %v (present: %v)", err, ok)
	}
	var r routing
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return nil, 0, fmt.Errorf("the routing table: %w", err)
	}
	out := make([]string, seqGroups)
	for _, rg := range r.Ranges {
		for g := rg.First; g <= rg.Last && g < len(out); g++ {
			out[g] = rg.Owner
		}
	}
	return out, r.Version, nil
}

// reservePorts listens on n distinct free loopback ports and returns
// them, with the function that closes the listeners (idempotent). A
// server that finds its port taken later fails to start and says so in
// its log.
func reservePorts(n int) (ports []int, release func(), err error) {
	lns := make([]net.Listener, 0, n)
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, ln := range lns {
				ln.Close()
			}
		})
	}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("%w: no free port: %v", ErrSetup, err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, release, nil
}
