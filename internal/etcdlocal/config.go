package etcdlocal

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Errors returned by this package. They are wrapped with detail; test them
// with errors.Is.
var (
	// ErrConfig means a Config or an option is invalid.
	ErrConfig = errors.New("etcdlocal: invalid config")
	// ErrNotLoopback means an address is not a loopback IP address. The
	// embedded etcd has no TLS and no authentication: anyone who can reach
	// it can rewrite worker IDs and sequences, so it never listens beyond
	// the host.
	ErrNotLoopback = errors.New("etcdlocal: address is not a loopback IP address")
	// ErrNotReady means etcd did not become ready to serve before the
	// context ended. It is wrapped together with the context's error.
	ErrNotReady = errors.New("etcdlocal: etcd not ready")
	// ErrStopped means etcd stopped by itself before it became ready (for
	// example on a corrupt data directory); etcd logs the cause.
	ErrStopped = errors.New("etcdlocal: etcd stopped")
	// ErrDirInUse means a data directory is in use: a running member, in
	// this process or another, holds it (or, for package etcdcluster, a
	// member directory exists already).
	ErrDirInUse = errors.New("etcdlocal: data directory already in use")
)

// Defaults for the zero values of [Config].
const (
	DefaultName            = "mig"
	DefaultAddr            = "127.0.0.1:0"
	DefaultHeartbeat       = 100 * time.Millisecond // etcd's own default
	DefaultElectionTimeout = 1000 * time.Millisecond
	DefaultDrainTimeout    = time.Second
	DefaultCompaction      = time.Hour
)

// Config configures one embedded etcd member. The zero value of every field
// but Dir means its default.
type Config struct {
	// Dir is the data directory. Required. A directory that already holds a
	// member's data is reopened, with everything that was written to it.
	Dir string
	// Name is the member's name. Default [DefaultName].
	Name string
	// ClientAddr is the loopback host:port clients connect to. Port 0 picks
	// a free port; [Server.Endpoints] tells which. Default [DefaultAddr].
	ClientAddr string
	// PeerAddr is the loopback host:port for raft traffic, unused by a
	// single member but bound all the same. Default [DefaultAddr].
	PeerAddr string
	// AdvertisePeerAddr is the loopback host:port the other members are
	// told to reach this one at: a proxy in front of PeerAddr, for a test
	// that delays or cuts the traffic between members (package
	// etcdcluster). Default PeerAddr.
	AdvertisePeerAddr string
	// Heartbeat is raft's heartbeat interval, rounded down to milliseconds.
	// Default [DefaultHeartbeat].
	Heartbeat time.Duration
	// ElectionTimeout is raft's election timeout, at least 5 heartbeats.
	// Default [DefaultElectionTimeout].
	ElectionTimeout time.Duration
	// DrainTimeout is how long Close lets in-flight client calls finish
	// before it cuts client connections. Negative cuts them at once.
	// Default [DefaultDrainTimeout].
	DrainTimeout time.Duration
	// Compaction is how much key history etcd keeps (periodic
	// auto-compaction). Without it a long-running `mig serve` grows its
	// history until etcd's space quota raises an alarm and refuses writes.
	// Negative keeps all history. Default [DefaultCompaction].
	Compaction time.Duration
	// Logger receives etcd's logs. Default: errors only, to standard
	// error, because etcd logs at info level every few milliseconds.
	Logger *zap.Logger
	// InitialCluster is etcd's "name=peerURL,..." list of every member,
	// for a member of a multi-member cluster (package etcdcluster builds
	// one); empty for a member alone in its cluster. etcd ignores it once
	// the member has data.
	InitialCluster string
}

// Validate reports whether c can start a member. It returns an error
// wrapping [ErrConfig] or [ErrNotLoopback].
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults returns c with defaults filled in, validated.
func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, fmt.Errorf("%w: no data directory", ErrConfig)
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.ClientAddr == "" {
		c.ClientAddr = DefaultAddr
	}
	if c.PeerAddr == "" {
		c.PeerAddr = DefaultAddr
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Compaction == 0 {
		c.Compaction = DefaultCompaction
	}
	if c.AdvertisePeerAddr == "" {
		c.AdvertisePeerAddr = c.PeerAddr
	}
	for _, a := range []string{c.ClientAddr, c.PeerAddr, c.AdvertisePeerAddr} {
		if err := checkLoopback(a); err != nil {
			return c, err
		}
	}
	if err := checkTiming(c.Heartbeat, c.ElectionTimeout); err != nil {
		return c, err
	}
	if c.Compaction > 0 && c.Compaction < time.Second {
		// etcd's periodic compactor works in whole seconds at least.
		return c, fmt.Errorf("%w: compaction %v is under a second", ErrConfig, c.Compaction)
	}
	return c, nil
}

// checkTiming mirrors etcd's own checks, so that a bad setting fails with
// our sentinel rather than deep inside embed.
func checkTiming(heartbeat, election time.Duration) error {
	if heartbeat < time.Millisecond {
		return fmt.Errorf("%w: heartbeat %v is under 1ms", ErrConfig, heartbeat)
	}
	if election < 5*heartbeat {
		return fmt.Errorf("%w: election timeout %v is under 5 heartbeats of %v", ErrConfig, election, heartbeat)
	}
	if election > 50*time.Second {
		return fmt.Errorf("%w: election timeout %v is over 50s", ErrConfig, election)
	}
	return nil
}

// checkLoopback accepts "ip:port" where ip is a loopback IP literal.
// Host names are refused: "localhost" may resolve to anything.
func checkLoopback(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrConfig, hostport, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%w: %q: bad port", ErrConfig, hostport)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, hostport)
	}
	return nil
}
