//go:build faultinject

package main

// This file exists only in fault-injection builds:
//
//	go build -tags faultinject -o mig-fault ./cmd/mig
//
// It gives `mig serve` two flags that the fault scenarios of package
// loadtest/scenario drive a running server with. A production build has
// neither (faultinject_off.go): there `mig serve --fault-clock-file ...` is
// refused as an unknown flag, so no configuration mistake, environment
// variable or operator can turn these faults on in production.
//
// The options reach runServe through its context (see withFaultFlags),
// not through a package-level variable: nothing in the package changes
// after init, in this build or the other.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/migsvc/mig/clock"
)

// faultInjection reports whether this binary was built with -tags
// faultinject: whether `mig serve` accepts the --fault-* flags.
const faultInjection = true

// faultClockPoll is how often the file of --fault-clock-file is re-read.
const faultClockPoll = 100 * time.Millisecond

// maxFaultOffset bounds the wall-clock offset a fault file may set: enough
// for any step a scenario makes (an hour and more), far from overflowing
// the ID clock's arithmetic.
const maxFaultOffset = 1000 * time.Hour

// faultOptions are the fault-injection flags of `mig serve`.
type faultOptions struct {
	clockFile string
	clockRate float64
	peerVia   map[string]string // --fault-peer-via: address -> the proxy to dial for it
}

// faultKey is the context key under which withFaultFlags passes the
// options to runServe.
type faultKey struct{}

// withFaultFlags adds the fault-injection flags to the serve command's
// flags, and passes their values to runServe in the context.
func withFaultFlags(define func(*flag.FlagSet) func(context.Context, *proc, []string) int) func(*flag.FlagSet) func(context.Context, *proc, []string) int {
	return func(fs *flag.FlagSet) func(context.Context, *proc, []string) int {
		o := &faultOptions{}
		fs.StringVar(&o.clockFile, "fault-clock-file", "", "FAULT INJECTION BUILD ONLY: a `file` holding a duration (like -5s or 1h) added to the wall clock;\nre-read every 100ms, so a test can step the clock of a running server")
		fs.Float64Var(&o.clockRate, "fault-clock-rate", 1, "FAULT INJECTION BUILD ONLY: the rate, in (0, 1], at which this server's monotonic clock runs;\nbelow 1 the lease margin no longer covers the error and the self-fencing deadline\ncomes late: a deliberately broken server, for showing that the checker catches it")
		var via string
		fs.StringVar(&via, "fault-peer-via", "", "FAULT INJECTION BUILD ONLY: comma-separated `ADDR=VIA` pairs: the node forwards sequence calls\nfor the node at host:port ADDR through host:port VIA (a proxy that delays or cuts, as between datacenters)")
		run := define(fs)
		return func(ctx context.Context, p *proc, args []string) int {
			if !(o.clockRate > 0 && o.clockRate <= 1) {
				fmt.Fprintf(p.stderr, "mig serve: --fault-clock-rate %v: must be in (0, 1]\n", o.clockRate)
				return exitUsage
			}
			m, err := parsePeerVia(via)
			if err != nil {
				fmt.Fprintf(p.stderr, "mig serve: --fault-peer-via: %v\n", err)
				return exitUsage
			}
			o.peerVia = m
			return run(context.WithValue(ctx, faultKey{}, o), p, args)
		}
	}
}

// faultClock returns the clock `mig serve` runs on: src, slowed by
// --fault-clock-rate and shifted by the offset in --fault-clock-file. The
// returned function stops re-reading the file and waits for its
// goroutine; call it after everything that reads the clock has stopped.
// It fails when the file cannot be read or parsed at start.
func faultClock(ctx context.Context, src clock.Source, log *slog.Logger) (clock.Source, func(), error) {
	o, _ := ctx.Value(faultKey{}).(*faultOptions)
	if o == nil {
		return src, func() {}, nil
	}
	if o.clockRate != 1 {
		log.Warn("fault injection: the monotonic clock runs slow; self-fencing is broken on purpose", "rate", o.clockRate)
		src = &slowSource{src: src, rate: o.clockRate}
	}
	if o.clockFile == "" {
		return src, func() {}, nil
	}
	off, err := readFaultOffset(o.clockFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--fault-clock-file: %w", err)
	}
	sk := clock.NewSkewed(src, off)
	if off != 0 {
		log.Warn("fault injection: wall clock offset", "offset", off.String(), "file", o.clockFile)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { watchFaultOffset(wctx, sk, src, o.clockFile, log) })
	return sk, func() { cancel(); wg.Wait() }, nil
}

// watchFaultOffset re-reads the offset file every faultClockPoll and steps
// sk to it, until ctx ends. An unreadable file keeps the last offset.
func watchFaultOffset(ctx context.Context, sk *clock.Skewed, src clock.Source, path string, log *slog.Logger) {
	failing := false
	for clock.Sleep(ctx, src, faultClockPoll) == nil {
		off, err := readFaultOffset(path)
		if err != nil {
			if !failing {
				log.Warn("fault injection: cannot read the clock file; keeping the offset", "file", path, "err", err)
			}
			failing = true
			continue
		}
		failing = false
		if d := off - sk.Offset(); d != 0 {
			sk.Step(d)
			log.Warn("fault injection: wall clock offset", "offset", off.String(), "step", d.String(), "file", path)
		}
	}
}

// parsePeerVia parses --fault-peer-via.
func parsePeerVia(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		addr, via, ok := strings.Cut(kv, "=")
		for _, a := range []string{addr, via} {
			if _, _, err := net.SplitHostPort(a); !ok || err != nil {
				return nil, fmt.Errorf("%q is not ADDR=VIA with two host:port addresses", kv)
			}
		}
		m[addr] = via
	}
	return m, nil
}

// faultPeers returns the client a node forwards sequence calls with: c,
// dialing through the proxy --fault-peer-via names for an address.
func faultPeers(ctx context.Context, c *http.Client) *http.Client {
	o, _ := ctx.Value(faultKey{}).(*faultOptions)
	tr, ok := c.Transport.(*http.Transport)
	if o == nil || len(o.peerVia) == 0 || !ok {
		return c
	}
	tr = tr.Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if via, ok := o.peerVia[addr]; ok {
			addr = via
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: c.Timeout}
}

// readFaultOffset reads a duration such as "-5s" from path.
func readFaultOffset(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	off, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, err
	}
	if off > maxFaultOffset || off < -maxFaultOffset {
		return 0, errors.New("offset beyond 1000h")
	}
	return off, nil
}

// slowSource is a Source whose monotonic time runs at rate (< 1) of src's,
// and whose waits last correspondingly longer; its wall clock is src's.
// A host clock this wrong is what the lease margin covers up to
// margin/TTL; far beyond that the worker's self-fencing deadline passes
// only after etcd has expired its lease. Safe for concurrent use.
type slowSource struct {
	src  clock.Source
	rate float64
}

func (s *slowSource) Now() clock.Reading {
	r := s.src.Now()
	r.Mono = time.Duration(float64(r.Mono) * s.rate)
	return r
}

func (s *slowSource) Mono() time.Duration { return time.Duration(float64(s.src.Mono()) * s.rate) }

func (s *slowSource) After(d time.Duration) <-chan struct{} {
	return s.src.After(time.Duration(float64(d) / s.rate))
}
