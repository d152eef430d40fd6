package etcdcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/migsvc/mig/internal/etcdlocal"
)

// Timing defaults: short, so that a test that stops the leader sees a new
// one within a fraction of a second, yet long enough that three members
// sharing two cores under -race do not call spurious elections.
const (
	DefaultHeartbeat       = 25 * time.Millisecond
	DefaultElectionTimeout = 250 * time.Millisecond
	// MaxSize bounds n in Start; etcd reserves file descriptors for at
	// most 9 members.
	MaxSize = 9
)

// Errors of a Cluster's methods; Start's are etcdlocal's (see Start).
var (
	// ErrNoMember means a member index is out of range.
	ErrNoMember = errors.New("etcdcluster: no such member")
	// ErrRunning means a member asked to restart is still running.
	ErrRunning = errors.New("etcdcluster: member is running")
	// ErrClosed means the cluster has been closed.
	ErrClosed = errors.New("etcdcluster: cluster closed")
)

// launchTries is how often Start picks new ports when one was taken
// between picking and binding.
const launchTries = 5

// Option configures [Start].
type Option func(*clusterOptions)

type clusterOptions struct {
	heartbeat time.Duration
	election  time.Duration
	logger    *zap.Logger
	advertise func(member int, peerAddr string) (string, error)
}

// WithPeerAdvertise makes each member tell the others to reach it at the
// address advertise returns for its peer address (host:port on
// loopback), rather than at the peer address itself: a proxy in front of
// it, so that a test can delay or cut the traffic between members, as
// between the sites of a cluster that spans datacenters. Start calls
// advertise once for each member before launching any, and again with new
// peer addresses if it has to pick ports anew; the address it returns
// must forward to the peer address it was given for the life of the
// Cluster.
func WithPeerAdvertise(advertise func(member int, peerAddr string) (string, error)) Option {
	return func(o *clusterOptions) { o.advertise = advertise }
}

// WithTiming sets raft's heartbeat interval and election timeout (at least
// 5 heartbeats). Defaults: [DefaultHeartbeat], [DefaultElectionTimeout].
func WithTiming(heartbeat, election time.Duration) Option {
	return func(o *clusterOptions) {
		o.heartbeat, o.election = heartbeat, election
	}
}

// WithLogger sends every member's logs to lg instead of logging errors to
// standard error.
func WithLogger(lg *zap.Logger) Option {
	return func(o *clusterOptions) { o.logger = lg }
}

// Cluster is a set of etcd members in this process, on loopback, that a
// test can stop and restart one by one. It is safe for concurrent use;
// Start, Stop, Restart and Close are serialized.
type Cluster struct {
	members []etcdlocal.Config // fixed at start: a member keeps its name, dir and URLs

	// op serializes lifecycle changes, which may wait for etcd; mu alone
	// guards the fields below and is never held while waiting.
	op sync.Mutex
	mu struct {
		sync.Mutex
		servers []*etcdlocal.Server // latest instance of each member, running or not
		running []bool
		stopped []*etcdlocal.Server // every instance killed, for Close to wait for
		closed  bool
	}
}

// Start starts a new cluster of n members with data under dir (in
// dir/m0, dir/m1, ...) and returns once every member is ready, or with an
// error once ctx ends. Client and peer URLs are on 127.0.0.1 at ports
// chosen here, kept for the life of the Cluster.
//
// Errors: etcdlocal.ErrConfig for n out of [1, MaxSize], an empty dir or
// bad timing; etcdlocal.ErrDirInUse when a member directory exists (Start
// only creates new clusters, because a member keeps its peers' URLs in
// its data and the ports are chosen anew each time);
// etcdlocal.ErrNotReady (with ctx's error) or etcdlocal.ErrStopped when
// the members do not become ready; etcd's own errors otherwise. On error
// nothing is left running and the member directories are removed.
func Start(ctx context.Context, dir string, n int, opts ...Option) (*Cluster, error) {
	o := clusterOptions{heartbeat: DefaultHeartbeat, election: DefaultElectionTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: no data directory", etcdlocal.ErrConfig)
	}
	if n < 1 || n > MaxSize {
		return nil, fmt.Errorf("%w: %d members, want 1 to %d", etcdlocal.ErrConfig, n, MaxSize)
	}
	if err := (etcdlocal.Config{Dir: dir, Heartbeat: o.heartbeat, ElectionTimeout: o.election}).Validate(); err != nil {
		return nil, err
	}
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = filepath.Join(dir, memberName(i))
		if _, err := os.Stat(dirs[i]); !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", etcdlocal.ErrDirInUse, dirs[i])
		}
	}

	var err error
	for try := 1; try <= launchTries; try++ {
		var c *Cluster
		c, err = launchCluster(dirs, o)
		if err == nil {
			if err = c.waitReady(ctx, c.all()); err == nil {
				return c, nil
			}
			c.Close()
		}
		removeAll(dirs)
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, err
}

// launchCluster picks ports and launches every member without waiting.
func launchCluster(dirs []string, o clusterOptions) (*Cluster, error) {
	n := len(dirs)
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{members: make([]etcdlocal.Config, n)}
	peers := make([]string, n)
	for i := range c.members {
		peer := loopbackAddr(ports[2*i+1])
		advertised := peer
		if o.advertise != nil {
			if advertised, err = o.advertise(i, peer); err != nil {
				return nil, fmt.Errorf("etcdcluster: the advertised peer address of %s: %w", memberName(i), err)
			}
		}
		c.members[i] = etcdlocal.Config{
			Name:              memberName(i),
			Dir:               dirs[i],
			ClientAddr:        loopbackAddr(ports[2*i]),
			PeerAddr:          peer,
			AdvertisePeerAddr: advertised,
			Heartbeat:         o.heartbeat,
			ElectionTimeout:   o.election,
			DrainTimeout:      -1, // members are stopped as if they crashed
			Compaction:        -1, // tests may want to read old revisions
			Logger:            o.logger,
		}
		peers[i] = c.members[i].Name + "=http://" + advertised
	}
	initial := strings.Join(peers, ",")
	for i := range c.members {
		c.members[i].InitialCluster = initial
	}
	c.mu.servers = make([]*etcdlocal.Server, n)
	c.mu.running = make([]bool, n)
	if err := c.launch(c.all()); err != nil {
		c.Close() // waits for the members launched before the failure
		return nil, err
	}
	return c, nil
}

func memberName(i int) string { return "m" + strconv.Itoa(i) }

func loopbackAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func removeAll(dirs []string) {
	for _, d := range dirs {
		// Best effort: the directory is ours, and an error here would hide
		// the one that made us clean up.
		_ = os.RemoveAll(d)
	}
}

func (c *Cluster) all() []int {
	ids := make([]int, len(c.members))
	for i := range ids {
		ids[i] = i
	}
	return ids
}

// launch launches the given stopped members. On error it stops those it
// launched; Close waits for the end of their shutdown.
func (c *Cluster) launch(ids []int) error {
	for k, i := range ids {
		s, err := etcdlocal.Launch(c.members[i])
		if err != nil {
			c.kill(ids[:k])
			return err
		}
		c.mu.Lock()
		c.mu.servers[i] = s
		c.mu.running[i] = true
		c.mu.Unlock()
	}
	return nil
}

// waitReady waits for the given members. On error it stops them all.
func (c *Cluster) waitReady(ctx context.Context, ids []int) error {
	for _, i := range ids {
		if err := c.server(i).WaitReady(ctx); err != nil {
			c.kill(ids)
			return fmt.Errorf("%w (member %s)", err, c.members[i].Name)
		}
	}
	return nil
}

// kill stops the given members as if their process crashed, in parallel.
// Their ports and directories are free when it returns; Close waits for
// the rest of their shutdown.
func (c *Cluster) kill(ids []int) {
	var wg sync.WaitGroup
	for _, i := range ids {
		c.mu.Lock()
		s, running := c.mu.servers[i], c.mu.running[i]
		c.mu.running[i] = false
		if running {
			c.mu.stopped = append(c.mu.stopped, s)
		}
		c.mu.Unlock()
		if running {
			wg.Go(s.Kill)
		}
	}
	wg.Wait()
}

func (c *Cluster) server(i int) *etcdlocal.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.servers[i]
}

// checkLocked validates a member index; the caller holds c.mu.
func (c *Cluster) checkLocked(i int) error {
	if c.mu.closed {
		return ErrClosed
	}
	if i < 0 || i >= len(c.members) {
		return fmt.Errorf("%w: %d of %d", ErrNoMember, i, len(c.members))
	}
	return nil
}

// Stop stops member i as if its process crashed: no leadership transfer,
// client connections cut at once, listeners closed. Its data stays for
// [Cluster.Restart]. Stopping a stopped member does nothing.
//
// Errors: [ErrNoMember], [ErrClosed].
func (c *Cluster) Stop(i int) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	err := c.checkLocked(i)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.kill([]int{i})
	return nil
}

// Restart brings the given stopped members back with their data and their
// URLs, and returns once all of them are ready. A member is ready only once
// a quorum is running, so members that cannot reach quorum one by one must
// be restarted in one call. On error the members named are stopped again.
//
// Errors: [ErrNoMember], [ErrRunning], [ErrClosed]; etcdlocal.ErrNotReady
// (with ctx's error) when ctx ends first; etcd's errors otherwise, such as
// EADDRINUSE if something else took the member's port meanwhile.
func (c *Cluster) Restart(ctx context.Context, ids ...int) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	for k, i := range ids {
		err := c.checkLocked(i)
		if err == nil && c.mu.running[i] {
			err = fmt.Errorf("%w: %s", ErrRunning, c.members[i].Name)
		}
		if err == nil && slices.Contains(ids[:k], i) {
			err = fmt.Errorf("%w: %s named twice", etcdlocal.ErrConfig, c.members[i].Name)
		}
		if err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.mu.Unlock()
	if err := c.launch(ids); err != nil {
		return err
	}
	return c.waitReady(ctx, ids)
}

// Endpoints returns every member's client URL, in member order, whether the
// member runs or not: give them all to a client and it fails over.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = "http://" + m.ClientAddr
	}
	return eps
}

// Len returns the number of members.
func (c *Cluster) Len() int { return len(c.members) }

// Member returns member i's latest instance, running or stopped; a stopped
// one still tells its Endpoints, which Restart keeps. It returns nil when i
// is out of range.
func (c *Cluster) Member(i int) *etcdlocal.Server {
	if i < 0 || i >= len(c.members) {
		return nil
	}
	return c.server(i)
}

// Leader returns the index of a running member that believes it is the
// leader, or -1. Right after an election two members may believe it for a
// moment; this is a hint for choosing whom to stop, not a fact.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.mu.servers {
		if c.mu.running[i] && s.IsLeader() {
			return i
		}
	}
	return -1
}

// Close stops every member, as if they crashed together, and returns when
// all have stopped. The data directories stay. Close is idempotent.
func (c *Cluster) Close() {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	c.mu.closed = true
	c.mu.Unlock()
	c.kill(c.all())
	c.mu.Lock()
	stopped := c.mu.stopped
	c.mu.stopped = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range stopped {
		wg.Go(s.Close)
	}
	wg.Wait()
}
