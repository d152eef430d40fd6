package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
)

var serveCommand = command{
	name:     "serve",
	synopsis: "[--dc NAME] [--workers A-B] [--etcd ENDPOINTS] [--listen HOST:PORT] [flags]",
	summary:  "serve message IDs over Twirp as one worker of a datacenter",
	about: `
Serve runs one MIG worker: it claims the lowest free worker ID of the
datacenter's range (--workers) in etcd, and serves IDService over Twirp
(protobuf and JSON) at /twirp/mig.v1.IDService/, with /metrics, /healthz and
/readyz beside it.

Without --etcd it starts an embedded single-member etcd in --data-dir, so
that 'mig serve' alone is a working service on one machine. In production
give --etcd the endpoints of the datacenter's etcd cluster and run one
'mig serve' per worker process, with the same --dc, --workers and --epoch
on every worker of the datacenter.

It stops on SIGINT or SIGTERM: it stops accepting connections, answers the
requests in flight (for up to --shutdown-timeout), persists the time
watermark and releases the worker ID, so that a restart claims it again at
once and continues above every ID issued. A second signal ends it at once.

Exit status: 0 after a clean shutdown, 1 when it could not start or failed,
2 for a bad flag or flag value.`,
	flags: withFaultFlags(serveFlagsRun), // adds --fault-* only in -tags faultinject builds
}

func serveFlagsRun(fs *flag.FlagSet) func(context.Context, *proc, []string) int {
	f := defineServeFlags(fs)
	return func(ctx context.Context, p *proc, args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(p.stderr, "mig serve: unexpected argument %q: serve takes flags only\nRun 'mig serve --help' for usage.\n", args[0])
			return exitUsage
		}
		cfg, err := f.config()
		if err != nil {
			fmt.Fprintf(p.stderr, "mig serve: %v\nRun 'mig serve --help' for usage.\n", err)
			return exitUsage
		}
		log := newLogger(p.stderr, f.logFormat, f.logLevel)

		// The signal context lives here, not in main: only serve waits for
		// signals. Once the first arrives, signals get their default
		// action again, so a second one ends the process at once.
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		go func() {
			<-ctx.Done()
			stop()
		}()

		if err := runServe(ctx, cfg, log, p.stderr, nil); err != nil {
			log.Error("mig serve failed", "err", err)
			return exitFail
		}
		return exitOK
	}
}

// dropNil leaves out attributes whose value is nil, so that a line logged
// with an error that may be nil ("err", err) says nothing rather than
// err=<nil>. It serves every package's logs, which all go through here.
func dropNil(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindAny && a.Value.Any() == nil {
		return slog.Attr{}
	}
	return a
}

// newLogger returns the logger of `mig serve` on w. format and level were
// checked by serveFlags.config.
func newLogger(w io.Writer, format, level string) *slog.Logger {
	lvl, _ := parseLogLevel(level)
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: dropNil}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
