package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/clock/ntp"
	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/seqfacade"
	"github.com/migsvc/mig/workerid"
)

// Limits of the HTTP server. A MIG request is a few bytes and its answer
// is ready at once, so these only bound what a slow or hostile client can
// hold; the body size is limited by rpc.Server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second // an answer of rpc.MaxCount IDs as JSON is ~2 MB
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
)

// runServe runs one worker until ctx is done, then shuts down cleanly, and
// returns nil after a clean shutdown. It calls ready, if not nil, with the
// address it listens on once it serves. Logs go to log; the embedded etcd
// and the etcd client write their errors to logOut.
//
// Start-up order: the listener first (a port in use fails before anything
// touches etcd), the clock, etcd, the worker ID, then serving. Shutdown
// runs the other way round, and its order is what makes a restart safe:
//
//  0. hand the sequence groups to other nodes (Drain), still serving;
//  1. stop accepting and answer the requests in flight;
//  2. close the worker: stop its generator, persist the highest tick
//     issued as the watermark, revoke the lease (the ID is free at once);
//  3. close the sequence node (max_seq is always persisted already; it
//     revokes its lease);
//  4. close the etcd client, then the embedded etcd.
//
// HAZARD: the worker must close only after the HTTP server has stopped
// handling requests, or an answer could carry IDs above the watermark it
// persists. A request still running when --shutdown-timeout passes is
// safe too: the generator is stopped atomically with issuing, so it gets
// unavailable, not an ID.
// startHold returns the ID clock's configuration, holding from the
// start how far the wall clock is ahead of NTP time past --ntp-max-offset
// (one round of the NTP servers, before anything is dated): the ID clock
// then starts at NTP time, and a host that boots with its clock ahead
// neither dates IDs nor persists a watermark by it, before or after its
// clock is corrected. A wall clock behind NTP time cannot be held; the
// check refuses IDs until it is corrected.
func startHold(cfg serveConfig, src clock.Source, log *slog.Logger) clock.SlewConfig {
	c := cfg.slew
	if c.HoldForward == 0 { // no NTP check (serveFlags.holdForward)
		return c
	}
	best, ok := ntp.Measure(cfg.ntp, src)
	if ahead := -best.Offset; ok && ahead > c.HoldForward {
		c.StartHeld = ahead
		log.Warn("the wall clock is ahead of NTP time: the ID clock starts at NTP time and holds the difference until the wall clock is corrected",
			"ahead", ahead, "server", best.Server)
	}
	return c
}

func runServe(ctx context.Context, cfg serveConfig, log *slog.Logger, logOut io.Writer, ready func(addr string)) (err error) {
	tlsCfg, err := cfg.tls.serverConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer ln.Close() // a no-op once the HTTP server has closed it

	// faultClock is the host's clock, except in fault-injection builds
	// (faultinject.go), where a scenario may step or slow it.
	src, stopFaults, err := faultClock(ctx, clock.NewReal(), log)
	if err != nil {
		return err
	}
	defer stopFaults()
	slew, err := clock.NewSlewing(src, startHold(cfg, src, log))
	if err != nil {
		return err // checked by serveFlags.config
	}
	idc := clock.NewCoarse(slew, cfg.resolution)
	defer idc.Close()
	ncfg := cfg.ntp
	ncfg.IDClock = slew // confirms the steps forward it holds (serveFlags.holdForward)
	ntpMon, err := ntp.Start(ncfg, src)
	if err != nil {
		return err // checked by serveFlags.config
	}
	defer ntpMon.Close()

	etcd, err := connectEtcd(ctx, cfg.etcd, log, logOut)
	if err != nil {
		return err
	}
	defer etcd.close()

	wcfg := cfg.worker
	wcfg.Logger = log
	wcfg.Holder = holder(ln.Addr())
	wcfg.ClockCheck = ntpMon // always safe without --ntp-servers
	worker, err := workerid.Start(ctx, wcfg, etcd.cli, src, idc)
	if err != nil {
		return fmt.Errorf("claiming a worker ID in datacenter %s, range %s: %w", wcfg.Datacenter, wcfg.Range, err)
	}
	workerClosed := false
	defer func() {
		if !workerClosed { // an early return below
			_ = closeWorker(ctx, worker, cfg.shutdownTimeout, log)
		}
	}()

	seqCli := etcd.cli
	if len(cfg.seqEtcd) > 0 {
		sc := cfg.etcd
		sc.endpoints = cfg.seqEtcd
		seqEtcd, err := connectEtcd(ctx, sc, log, logOut)
		if err != nil {
			return fmt.Errorf("--seq-etcd: %w", err)
		}
		defer seqEtcd.close()
		seqCli = seqEtcd.cli
	}
	scheme, peers, err := cfg.tls.peerClient()
	if err != nil {
		return err
	}
	peers = faultPeers(ctx, peers)
	scfg := cfg.seq
	scfg.Logger = log
	scfg.HandOff = rpc.PeerHandOff(scheme, peers)
	scfg.NodeName = cmp.Or(scfg.NodeName, strings.ReplaceAll(holder(ln.Addr()), " ", "_"))
	scfg.Address = cmp.Or(scfg.Address, advertised(ln.Addr()))
	seq, err := seqfacade.Start(ctx, scfg, seqCli, src)
	if err != nil {
		return fmt.Errorf("starting the sequence node: %w", err)
	}
	seqClosed := false
	defer func() {
		if !seqClosed { // an early return below
			_ = closeSeq(ctx, seq, cfg.shutdownTimeout, log)
		}
	}()

	srv, err := rpc.NewServer(worker,
		rpc.WithLogger(log),
		rpc.WithSeq(seq, 0),
		rpc.WithForwarding(scfg.NodeName, scheme, peers, 0),
		rpc.WithClock(clock.NewRuntime()), // latencies: no suspended time needed, a cheap read
		rpc.WithReadiness("worker ID held", func() error {
			if !worker.Status().Held {
				return errors.New("no worker ID held: fenced or re-claiming")
			}
			return nil
		}),
		rpc.WithReadiness("lease valid", func() error {
			if h := worker.Status().DeadlineHeadroom; h <= 0 {
				return fmt.Errorf("lease deadline passed %v ago without an acknowledged renewal", -h)
			}
			return nil
		}),
		rpc.WithReadiness("clock safe", ntpMon.CheckClock),
		rpc.WithReadiness("sequences", seq.Ready),
	)
	if err != nil {
		return err
	}
	if err := registerMetrics(srv.Registry(), worker, slew, ntpMon); err != nil {
		return err
	}
	if err := registerSeqMetrics(srv.Registry(), seq); err != nil {
		return err
	}

	hs := &h1.Server{
		Handler:           srv.Handler(),
		Fast:              srv.FastHandlers(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		Log:               log,
	}
	if tlsCfg != nil {
		// The server speaks HTTP/1.1 only; ALPN tells clients so.
		tlsCfg.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tlsCfg)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	st := worker.Status()
	log.Info("serving", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "mutual_tls", cfg.tls.clientCA != "",
		"datacenter", st.Datacenter, "worker_id", st.WorkerID, "epoch", cfg.worker.Layout.Epoch().Format(time.RFC3339))
	if ready != nil {
		ready(ln.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing requests in flight", "timeout", cfg.shutdownTimeout)
	case err := <-served:
		runErr = fmt.Errorf("serving HTTP: %w", err)
		served <- err // for the wait below
	case <-etcd.done():
		runErr = errors.New("the embedded etcd stopped by itself")
	}

	// Sequences first, while the server still answers: the groups are
	// handed to other nodes, each released as soon as this node stopped
	// serving it, so their calls go on elsewhere without a gap (calls that
	// reach this node meanwhile are sent on).
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout/2)
	_ = seq.Drain(dctx)
	cancel()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("requests still in flight at the shutdown timeout; closing their connections", "err", err)
		_ = hs.Close() // they get unavailable or nothing: see the HAZARD above
	}
	cancel()
	if err := <-served; !errors.Is(err, h1.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("serving HTTP: %w", err)
	}

	workerClosed, seqClosed = true, true
	closeErr := errors.Join(closeWorker(ctx, worker, cfg.shutdownTimeout, log), closeSeq(ctx, seq, cfg.shutdownTimeout, log))
	log.Info("stopped", "ids_issued", counterValue(srv.Registry(), "mig_ids_issued_total"), "err", errors.Join(runErr, closeErr))
	// A worker that could not release its ID cleanly is still safe (the
	// lease expires and the watermark in etcd is ahead of every ID); only
	// a failure to run is an error of the command.
	return runErr
}

// closeWorker closes w with a timeout of its own, whether or not ctx is
// done already, and logs the outcome.
func closeWorker(ctx context.Context, w *workerid.Worker, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := w.Close(ctx)
	if err != nil {
		log.Warn("releasing the worker ID failed; it is free again when its lease expires", "err", err)
	}
	return err
}

// closeSeq closes the sequence node with a timeout of its own, like
// closeWorker. max_seq is always persisted before a value is handed out,
// so closing writes nothing; it revokes the node's lease.
func closeSeq(ctx context.Context, n *seqfacade.Node, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := n.Close(ctx)
	if err != nil {
		log.Warn("closing the sequence node failed; its sections are free again when its lease expires", "err", err)
	}
	return err
}

// advertised is the address clients reach this node at when
// --advertise-addr is not given: the listening address, with the host name
// for an unspecified host (0.0.0.0 or ::).
func advertised(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

// holder describes this process in its worker-ID claim, for operators
// reading etcd: host name and listening address.
func holder(addr net.Addr) string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return host + " " + addr.String()
}

// counterValue returns the value of the counter called name in reg, or 0
// when there is none.
func counterValue(reg prometheus.Gatherer, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}
