package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// defaultOpsTimeout bounds every etcd call of the operator commands
// (status, seq-raise): long enough for a cluster across datacenters, short
// enough that a dead one is reported while the operator still waits.
const defaultOpsTimeout = 5 * time.Second

// defaultPrefix is the etcd key prefix of workerid and seqfacade, which
// mig serve leaves at its default.
const defaultPrefix = "/mig"

// opsFlags are the flags of the commands that read or repair what mig
// serve keeps in etcd. The names are mig serve's, so the one environment
// file (MIG_ETCD, MIG_SEQ_ETCD, MIG_ETCD_CA, ...) serves both.
type opsFlags struct {
	etcd, seqEtcd             string
	prefix                    string
	timeout                   time.Duration
	etcdCert, etcdKey, etcdCA string
	etcdUser, etcdPassword    string
}

func defineOpsFlags(fs *flag.FlagSet) *opsFlags {
	f := &opsFlags{}
	fs.StringVar(&f.etcd, "etcd", "", "comma-separated etcd `endpoints` of the datacenter's cluster, as mig serve's --etcd\n(required; for mig serve's embedded etcd, the endpoint it logs as \"embedded etcd ready\")")
	fs.StringVar(&f.seqEtcd, "seq-etcd", "", "comma-separated etcd `endpoints` of the sequences' cluster, as mig serve's --seq-etcd;\nempty: the sequences live in --etcd")
	fs.StringVar(&f.prefix, "prefix", defaultPrefix, "the etcd key `prefix` mig keeps its keys under")
	fs.DurationVar(&f.timeout, "timeout", defaultOpsTimeout, "the timeout of every etcd call")
	fs.StringVar(&f.etcdCert, "etcd-cert", "", "the client certificate `file` (PEM) for etcd")
	fs.StringVar(&f.etcdKey, "etcd-key", "", "the client key `file` (PEM) for etcd")
	fs.StringVar(&f.etcdCA, "etcd-ca", "", "the CA certificate `file` (PEM) that signed etcd's server certificates")
	fs.StringVar(&f.etcdUser, "etcd-user", "", "the etcd `user` (with --etcd-password)")
	fs.StringVar(&f.etcdPassword, "etcd-password", "", "the etcd user's `password`; prefer the environment variable to the command line")
	return f
}

// check returns a usage error naming the flag at fault.
func (f *opsFlags) check() error {
	if len(splitList(f.etcd)) == 0 {
		return errors.New("--etcd is required: the endpoints of the datacenter's etcd cluster")
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %v: must be positive", f.timeout)
	}
	if !strings.HasPrefix(f.prefix, "/") || strings.TrimRight(f.prefix, "/") == "" {
		return fmt.Errorf("--prefix %q: must start with / and name something (like /mig)", f.prefix)
	}
	c := f.etcdConfig(splitList(f.etcd))
	return c.check()
}

// keyPrefix is --prefix as workerid and seqfacade use it: no trailing /.
func (f *opsFlags) keyPrefix() string { return strings.TrimRight(f.prefix, "/") }

func (f *opsFlags) etcdConfig(endpoints []string) etcdConfig {
	return etcdConfig{endpoints: endpoints, certFile: f.etcdCert, keyFile: f.etcdKey, caFile: f.etcdCA, user: f.etcdUser, password: f.etcdPassword}
}

// opsEtcd is a client of one etcd cluster for an operator command: every
// call it makes is bounded by timeout, and its errors name the endpoints.
type opsEtcd struct {
	cli       *clientv3.Client
	endpoints []string
	timeout   time.Duration
}

// dialOps returns a client of endpoints. Like every etcd 3.7 client it
// does not connect here: the first call does, and fails after the timeout
// when nothing answers.
func dialOps(f *opsFlags, endpoints []string) (*opsEtcd, error) {
	c := f.etcdConfig(endpoints)
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          f.timeout,
		DialKeepAliveTime:    etcdKeepAliveTime,
		DialKeepAliveTimeout: etcdKeepAliveTimeout,
		TLS:                  tlsCfg,
		Username:             c.user,
		Password:             c.password,
		Logger:               zap.NewNop(), // its errors reach us from the calls
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(endpoints, ","), err)
	}
	return &opsEtcd{cli: cli, endpoints: endpoints, timeout: f.timeout}, nil
}

func (e *opsEtcd) close() { _ = e.cli.Close() }

// call runs fn with a context bounded by the timeout, and wraps its error
// with what was being done and the endpoints, saying when the cause is
// that etcd did not answer in time.
func (e *opsEtcd) call(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	err := fn(cctx)
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || cctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("etcd at %s did not answer within %v (--timeout) %s: is it running and reachable? (%w)",
			strings.Join(e.endpoints, ","), e.timeout, what, err)
	}
	return fmt.Errorf("etcd at %s: %s: %w", strings.Join(e.endpoints, ","), what, err)
}

// get reads key, or every key under it with prefix, at one revision.
func (e *opsEtcd) get(ctx context.Context, key string, prefix bool) (*clientv3.GetResponse, error) {
	var resp *clientv3.GetResponse
	opts := []clientv3.OpOption{}
	what := "reading " + key
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
		what = "reading the keys under " + key
	}
	err := e.call(ctx, what, func(ctx context.Context) (err error) {
		resp, err = e.cli.Get(ctx, key, opts...)
		return err
	})
	return resp, err
}
