package etcdlocal

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/migsvc/mig/clock"
)

// lockName is the file in a data directory that a running member holds
// locked. etcd locks its own files too, but its database lock waits forever
// instead of failing, so a second `mig serve` on the same directory would
// hang in Start rather than say why.
const lockName = "etcdlocal.lock"

// clusterToken seeds etcd's cluster and member IDs. Clusters never talk to
// each other here (every one has its own ports), so one token serves all.
const clusterToken = "etcdlocal"

// Server is one running embedded etcd member. Its methods are safe for
// concurrent use.
type Server struct {
	e         *embed.Etcd
	name      string
	endpoints []string
	drain     time.Duration
	clk       clock.Source

	// grpc holds etcd's client-facing gRPC servers, which embed creates
	// once the member is ready and does not expose: stopping them
	// ourselves is the only way to bound Close when a client keeps a
	// stream open.
	grpc struct {
		sync.Mutex
		servers []*grpc.Server
	}

	lock     *fileutil.LockedFile // see lockName; released once storage is closed
	stopping atomic.Bool          // set when stop begins; see quietShutdown
	stopOnce sync.Once
	closed   chan struct{} // closed once embed's Close has returned
}

// member is everything needed to (re)start one member.
type member struct {
	name, dir          string
	clientURL, peerURL url.URL
	advertisePeerURL   url.URL
	// initialCluster is etcd's "name=peerURL,..." list; empty for a member
	// alone in its cluster. Ignored by etcd once the member has data.
	initialCluster string
	heartbeat      time.Duration
	election       time.Duration
	drain          time.Duration
	compaction     time.Duration
	logger         *zap.Logger
}

// Start starts a single-member etcd with data in cfg.Dir and returns once it
// is ready to serve clients, or with an error once ctx ends.
//
// Errors: [ErrConfig] or [ErrNotLoopback] for a bad cfg; [ErrDirInUse] when
// another member, in this process or another, runs on cfg.Dir; [ErrNotReady]
// (with ctx's error) when ctx ends first; [ErrStopped] when etcd gives up by
// itself; otherwise etcd's own error, for example for a port in use
// (errors.Is(err, syscall.EADDRINUSE)) or an unusable directory.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	s, err := Launch(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.WaitReady(ctx); err != nil {
		s.Kill()
		<-s.closed
		return nil, err
	}
	return s, nil
}

// Launch starts a member and returns without waiting for it to be ready,
// which a member of a multi-member cluster (cfg.InitialCluster) cannot be
// until a quorum of its members has been launched: [Server.WaitReady]
// waits. Its errors are Start's, but for those of waiting.
func Launch(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return launch(member{
		name:             c.Name,
		dir:              c.Dir,
		clientURL:        url.URL{Scheme: "http", Host: c.ClientAddr},
		peerURL:          url.URL{Scheme: "http", Host: c.PeerAddr},
		advertisePeerURL: url.URL{Scheme: "http", Host: c.AdvertisePeerAddr},
		initialCluster:   c.InitialCluster,
		heartbeat:        c.Heartbeat,
		election:         c.ElectionTimeout,
		drain:            c.DrainTimeout,
		compaction:       c.Compaction,
		logger:           c.Logger,
	})
}

// launch starts a member without waiting for it to be ready.
func launch(m member) (*Server, error) {
	s := &Server{name: m.name, drain: m.drain, clk: clock.NewReal(), closed: make(chan struct{})}
	if err := fileutil.TouchDirAll(zap.NewNop(), m.dir); err != nil {
		return nil, fmt.Errorf("etcdlocal: data directory: %w", err)
	}
	lock, err := fileutil.TryLockFile(filepath.Join(m.dir, lockName), os.O_WRONLY|os.O_CREATE, fileutil.PrivateFileMode)
	if errors.Is(err, fileutil.ErrLocked) {
		return nil, fmt.Errorf("%w: %s is locked by a running member", ErrDirInUse, m.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("etcdlocal: locking data directory: %w", err)
	}
	s.lock = lock

	ec := embed.NewConfig()
	ec.Name = m.name
	ec.Dir = m.dir
	ec.ListenClientUrls = []url.URL{m.clientURL}
	ec.AdvertiseClientUrls = []url.URL{m.clientURL}
	ec.ListenPeerUrls = []url.URL{m.peerURL}
	ec.AdvertisePeerUrls = []url.URL{m.advertisePeerURL}
	ec.InitialCluster = m.initialCluster
	if ec.InitialCluster == "" {
		ec.InitialCluster = ec.InitialClusterFromName(m.name)
	}
	ec.InitialClusterToken = clusterToken
	ec.TickMs = uint(m.heartbeat / time.Millisecond)
	ec.ElectionMs = uint(m.election / time.Millisecond)
	// Nobody speaks etcd's JSON gateway here; it would only add an
	// internal gRPC connection that Close has to drain.
	ec.EnableGRPCGateway = false
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "0"
	if m.compaction > 0 {
		ec.AutoCompactionRetention = m.compaction.String()
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(withQuietShutdown(m.logger, &s.stopping))
	ec.ServiceRegister = s.addGRPC

	e, err := embed.StartEtcd(ec)
	if err != nil {
		s.unlock()
		return nil, fmt.Errorf("etcdlocal: starting member %s: %w", m.name, err)
	}
	s.e = e
	for _, l := range e.Clients {
		s.endpoints = append(s.endpoints, "http://"+l.Addr().String())
	}
	return s, nil
}

// addGRPC is embed's ServiceRegister hook; see Server.grpc.
func (s *Server) addGRPC(g *grpc.Server) {
	s.grpc.Lock()
	defer s.grpc.Unlock()
	s.grpc.servers = append(s.grpc.servers, g)
}

// WaitReady waits until the member serves clients, or until ctx ends
// ([ErrNotReady], with ctx's error) or etcd gives up ([ErrStopped]).
// ReadyNotify closes once the member has joined raft and published
// itself, which takes a leader.
func (s *Server) WaitReady(ctx context.Context) error {
	select {
	case <-s.e.Server.ReadyNotify():
		return nil
	case <-s.e.Server.StopNotify():
		return ErrStopped
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
	}
}

// Endpoints returns the client URLs the member listens on, such as
// "http://127.0.0.1:41234", for clientv3.Config.Endpoints. They stay the
// same after Close.
func (s *Server) Endpoints() []string {
	return append([]string(nil), s.endpoints...)
}

// Done is closed once the member has stopped, whether by Close or because
// etcd failed (a full disk, a corrupt WAL): a process that depends on it
// should then stop serving.
func (s *Server) Done() <-chan struct{} {
	return s.e.Server.StopNotify()
}

// Close stops the member and releases its ports and data directory. It is
// idempotent and returns when everything has stopped.
//
// Close clients of this member first. Close lets in-flight calls finish
// for up to the configured DrainTimeout, then cuts the remaining client
// connections (watches, keep-alive streams); without that cut etcd would
// wait for them for several seconds.
func (s *Server) Close() {
	s.stop(false)
	<-s.closed
}

// Kill stops the member as if its process crashed (a hard stop, below):
// no leadership transfer, client connections cut at once, listeners
// closed; its ports and data directory are free when it returns. The
// rest of its shutdown goes on in the background; Close waits for it.
func (s *Server) Kill() { s.stop(true) }

// IsLeader reports whether the member believes it is raft's leader.
// Right after an election two members may believe it for a moment.
func (s *Server) IsLeader() bool { return s.e.Server.Leader() == s.e.Server.MemberID() }

// stop shuts the member down once. Either way nothing acknowledged is lost:
// etcd acknowledges a write only once a quorum has it in its WAL.
//
// A hard stop is a crash as far as clients and the other members can tell:
// no leadership transfer, client connections cut, listeners closed, raft
// and storage stopped, all before it returns, so that the member's ports
// and directory can be reused at once. It leaves the rest of embed's Close
// to a goroutine that Close waits for, because with peers that rest takes
// up to a second: net/http's Shutdown waits for peer connections that look
// busy, since etcd's peer listener re-arms each connection's read deadline
// and so defeats the way net/http ends a finished request's background
// read. A crash should not take a second.
func (s *Server) stop(hard bool) {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		if !hard {
			s.closeEtcd(s.drain)
			s.unlock()
			return
		}
		// HardStop first, so that etcd's Close finds raft stopped and skips
		// the leadership transfer a graceful stop begins with. It returns
		// once the WAL and the database are closed.
		s.e.Server.HardStop()
		s.unlock()
		s.stopGRPC()
		// Closing a listener twice is harmless; etcd's Close closes them
		// again and ignores the error.
		for _, l := range s.e.Clients {
			_ = l.Close()
		}
		for _, p := range s.e.Peers {
			_ = p.Listener.Close()
		}
		go s.closeEtcd(0)
	})
}

// closeEtcd runs embed's Close, cutting client connections after drain, and
// closes s.closed when it returns.
func (s *Server) closeEtcd(drain time.Duration) {
	defer close(s.closed)
	closed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// Stopping a gRPC server interrupts the GracefulStop that
		// e.Close is waiting in.
		select {
		case <-s.clk.After(drain):
			s.stopGRPC()
		case <-closed:
		}
	})
	s.e.Close()
	close(closed)
	wg.Wait()
}

func (s *Server) unlock() {
	// Closing the file releases the lock; an error would mean the lock
	// was already gone.
	_ = s.lock.Close()
}

func (s *Server) stopGRPC() {
	s.grpc.Lock()
	servers := append([]*grpc.Server(nil), s.grpc.servers...)
	s.grpc.Unlock()
	for _, g := range servers {
		g.Stop()
	}
}

// String names the member and its endpoints, for test logs.
func (s *Server) String() string {
	return s.name + "@" + strings.Join(s.endpoints, ",")
}
