package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal"
	"github.com/migsvc/mig/internal/etcdprobe"
)

// etcdDialTimeout bounds connecting to etcd. clientv3.New does not wait for
// it (every call waits for a connection instead, bounded by its own
// timeout), so it only matters for how soon a dead endpoint is given up.
const etcdDialTimeout = 5 * time.Second

// etcdKeepAlive is how often an idle connection to etcd is probed, and how
// long a probe may go unanswered before the connection is dropped and
// dialled again: a member that vanished without a reset is noticed.
const (
	etcdKeepAliveTime    = 10 * time.Second
	etcdKeepAliveTimeout = 3 * time.Second
)

// etcdConfig says which etcd to use: a cluster's endpoints, or, with none,
// an embedded single member in dataDir.
type etcdConfig struct {
	endpoints                 []string
	dataDir                   string
	certFile, keyFile, caFile string
	user, password            string
}

func (c etcdConfig) embedded() bool { return len(c.endpoints) == 0 }

// check reports settings that do not go together; errors name the flags.
func (c etcdConfig) check() error {
	tlsSet := c.certFile != "" || c.keyFile != "" || c.caFile != ""
	switch {
	case (c.certFile == "") != (c.keyFile == ""):
		return errors.New("--etcd-cert and --etcd-key go together")
	case (c.user == "") != (c.password == ""):
		return errors.New("--etcd-user and --etcd-password go together")
	case c.embedded() && (tlsSet || c.user != ""):
		// The embedded etcd listens on loopback only, without TLS or users.
		return errors.New("--etcd-cert, --etcd-key, --etcd-ca, --etcd-user and --etcd-password need --etcd: the embedded etcd has neither TLS nor users")
	}
	return nil
}

// tlsConfig loads the client TLS settings, or returns nil for none.
func (c etcdConfig) tlsConfig() (*tls.Config, error) {
	if c.certFile == "" && c.caFile == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.certFile != "" {
		cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading --etcd-cert %s and --etcd-key %s: %w", c.certFile, c.keyFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	if c.caFile != "" {
		pool, err := loadCAs(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		t.RootCAs = pool
	}
	return t, nil
}

// etcdConn is a client of etcd and, when it is embedded, the server.
type etcdConn struct {
	cli    *clientv3.Client
	probe  *etcdprobe.Prober // nil for one endpoint
	server *etcdlocal.Server // nil for an external cluster
}

// connectEtcd starts the embedded etcd if there are no endpoints, and
// returns a client. etcd's own logs (errors only) go to logOut as JSON.
func connectEtcd(ctx context.Context, c etcdConfig, log *slog.Logger, logOut io.Writer) (*etcdConn, error) {
	zl := zapErrors(logOut)
	conn := &etcdConn{}
	endpoints := c.endpoints
	if c.embedded() {
		dir, fresh, err := inspectDataDir(c.dataDir)
		if err != nil {
			return nil, fmt.Errorf("--data-dir %s: %w", c.dataDir, err)
		}
		log.Info("no --etcd given: running an embedded single-member etcd (for one machine; give --etcd to join a cluster)", "data_dir", dir)
		if fresh {
			log.Warn("creating a NEW embedded etcd store: every ID and sequence counter starts afresh. "+
				"IDs stay unique only if this worker's clock is past the time of every ID issued before (the epoch and the watermark that were in the old store are gone); "+
				"every uid's sequence restarts from 0. If this worker ran before, stop it and find its old --data-dir.",
				"data_dir", dir)
		} else {
			log.Info("opening the existing embedded etcd store", "data_dir", dir)
		}
		s, err := etcdlocal.Start(ctx, etcdlocal.Config{Dir: dir, Logger: zl})
		if err != nil {
			return nil, fmt.Errorf("starting the embedded etcd in --data-dir %s: %w", dir, err)
		}
		conn.server = s
		endpoints = s.Endpoints()
		log.Info("embedded etcd ready", "endpoints", endpoints)
	}
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		conn.close()
		return nil, err
	}
	cfg := clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          etcdDialTimeout,
		DialKeepAliveTime:    etcdKeepAliveTime,
		DialKeepAliveTimeout: etcdKeepAliveTimeout,
		TLS:                  tlsCfg,
		Username:             c.user,
		Password:             c.password,
		Logger:               zl,
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		conn.close()
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	conn.cli = cli
	// gRPC's keepalive notices a silent member only after 10 s or more;
	// the prober keeps calls off it within a second.
	conn.probe = etcdprobe.Start(cli, cfg, clock.NewReal(), log, 0, 0)
	return conn, nil
}

// close closes the client, then the embedded server: in that order, or
// the server waits for the client's streams to time out.
func (c *etcdConn) close() {
	c.probe.Stop()
	if c.cli != nil {
		_ = c.cli.Close() // the connection is gone either way
	}
	if c.server != nil {
		c.server.Close()
	}
}

// done is closed when the embedded etcd stops by itself; nil (never) for
// an external cluster.
func (c *etcdConn) done() <-chan struct{} {
	if c.server == nil {
		return nil
	}
	return c.server.Done()
}

// inspectDataDir returns dir as an absolute path, and whether it holds no
// etcd data yet: absent, empty, or without etcd's member/ directory (a
// directory with only our lock file, say, from a start that failed before
// etcd wrote anything). Logging the absolute path matters: a relative
// --data-dir resolved against another working directory (a service
// manager's, a shell's) silently opens a different, empty store.
func inspectDataDir(dir string) (abs string, fresh bool, err error) {
	abs, err = filepath.Abs(dir)
	if err != nil {
		return "", false, err
	}
	st, err := os.Stat(filepath.Join(abs, "member"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return abs, true, nil
	case err != nil:
		return "", false, err
	case !st.IsDir():
		return "", false, fmt.Errorf("%s is not a directory: this is not an etcd data directory", filepath.Join(abs, "member"))
	}
	return abs, false, nil
}

// zapErrors is a zap logger for etcd's server and client that writes errors
// only, as JSON lines, to w: both log at info and warn level many times a
// second, and what matters reaches us as errors from calls anyway.
func zapErrors(w io.Writer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), zapcore.ErrorLevel))
}
