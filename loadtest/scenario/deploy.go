package scenario

import (
	"context"
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
	"github.com/migsvc/mig/internal/faultproxy"
	"github.com/migsvc/mig/seqfacade"
)

// The shape of the deployment.
const (
	// datacenters and serversPerDC: 2 datacenters of 3 servers, each
	// datacenter with its own 3-member etcd cluster.
	datacenters  = 2
	serversPerDC = 3
	etcdMembers  = 3
	// runnerEtcdTimeout bounds each etcd call the runner makes itself.
	runnerEtcdTimeout = 2 * time.Second
	// startTimeout bounds starting the deployment: etcd, then every server.
	startTimeout = 90 * time.Second
)

// datacenter is one datacenter of the deployment.
type datacenter struct {
	name    string // "dc1"
	index   int
	workers string // its worker-ID range, "0-2"
	others  string // the other datacenters' ranges, for --other-dcs
	etcd    *etcdcluster.Cluster
	cli     *clientv3.Client // the runner's own, straight to the members
	logFile *os.File         // etcd's log
	slots   []*slot          // its servers, then its standby slot
}

// servers returns the datacenter's regular slots (without the standby).
func (dc *datacenter) servers() []*slot { return dc.slots[:serversPerDC] }

// standby returns the slot a scenario may start a replacement server in.
func (dc *datacenter) standby() *slot { return dc.slots[serversPerDC] }

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
	homes    string  // --seq-homes: each datacenter's own store serves its home groups

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
	d := &deployment{cfg: cfg, settings: s, clk: clk, tl: tl, dir: dir}
	d.ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	ranges := make([]string, datacenters)
	for i := range ranges {
		first := i * serversPerDC
		ranges[i] = fmt.Sprintf("%d-%d", first, first+serversPerDC-1)
	}
	// The servers' ports stay reserved (listened on) until the servers
	// start: etcd and the proxies pick free ports of their own meanwhile,
	// and must not pick these.
	ports, release, err := reservePorts(datacenters * (serversPerDC + 1))
	if err != nil {
		return nil, err
	}
	defer release()
	var names []string
	for i := range datacenters {
		names = append(names, fmt.Sprintf("dc%d", i+1))
	}
	// Each datacenter's own etcd keeps the sequences of its home groups.
	d.homes = seqfacade.EvenHomes(seqGroups, names).String()
	for i := range datacenters {
		dc := &datacenter{name: fmt.Sprintf("dc%d", i+1), index: i, workers: ranges[i]}
		var others []string
		for j := range datacenters {
			if j != i {
				others = append(others, fmt.Sprintf("dc%d=%s", j+1, ranges[j]))
			}
		}
		dc.others = strings.Join(others, ",")
		d.dcs = append(d.dcs, dc)
		if err := d.startEtcd(ctx, dc); err != nil {
			return nil, err
		}
		for k := range serversPerDC + 1 {
			port := ports[i*(serversPerDC+1)+k]
			sl := &slot{
				d:       d,
				name:    fmt.Sprintf("%s-%c", dc.name, 'a'+k),
				dc:      dc,
				standby: k == serversPerDC,
				addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			}
			if sl.standby {
				sl.name = dc.name + "-standby"
			}
			sl.url = "http://" + sl.addr
			sl.clockFile = filepath.Join(dir, sl.name+".clock")
			sl.logPath = filepath.Join(dir, sl.name+".log")
			if err := sl.setClockOffset(0); err != nil {
				return nil, err
			}
			for _, ep := range dc.etcd.Endpoints() {
				u, err := url.Parse(ep)
				if err != nil {
					return nil, err
				}
				p, err := faultproxy.New(u.Host)
				if err != nil {
					return nil, fmt.Errorf("proxy to %s: %w", u.Host, err)
				}
				sl.proxies = append(sl.proxies, p)
			}
			dc.slots = append(dc.slots, sl)
			d.slots = append(d.slots, sl)
		}
	}
	release()
	tl.note("runner", "%d datacenters of %d servers, each datacenter on its own %d-member etcd; every server reaches each member through a fault proxy of its own", datacenters, serversPerDC, etcdMembers)
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

// startEtcd starts dc's etcd cluster and the runner's client of it.
func (d *deployment) startEtcd(ctx context.Context, dc *datacenter) error {
	logPath := filepath.Join(d.dir, "etcd-"+dc.name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	dc.logFile = f // closed after the cluster, which logs until it stops
	lg := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(f), zapcore.WarnLevel))
	c, err := etcdcluster.Start(ctx, filepath.Join(d.dir, "etcd-"+dc.name), etcdMembers, etcdcluster.WithLogger(lg))
	if err != nil {
		return fmt.Errorf("%w: etcd of %s: %v", ErrSetup, dc.name, err)
	}
	dc.etcd = c
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: runnerEtcdTimeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("%w: etcd client of %s: %v", ErrSetup, dc.name, err)
	}
	dc.cli = cli
	d.tl.note("etcd "+dc.name, "3 members at %s", strings.Join(c.Endpoints(), ", "))
	return nil
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
		for _, p := range sl.proxies {
			p.Close()
		}
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
}

// etcdGet reads key from dc's etcd: its value, or ok false when absent.
func (dc *datacenter) etcdGet(ctx context.Context, key string) (val string, ok bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, runnerEtcdTimeout)
	defer cancel()
	r, err := dc.cli.Get(cctx, key)
	if err != nil {
		return "", false, err
	}
	if len(r.Kvs) == 0 {
		return "", false, nil
	}
	return string(r.Kvs[0].Value), true, nil
}

// slot returns the slot named name in dc, or nil.
func (dc *datacenter) slot(name string) *slot {
	for _, s := range dc.slots {
		if s.name == name {
			return s
		}
	}
	return nil
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
