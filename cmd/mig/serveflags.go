package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/clock/ntp"
	"github.com/migsvc/mig/internal/etcdlocal"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/seqfacade"
	"github.com/migsvc/mig/workerid"
)

// Defaults of `mig serve` that are not a domain package's.
const (
	defaultDatacenter      = "dc1"
	defaultDataDir         = "mig-data"
	defaultListen          = "127.0.0.1:7070" // loopback: nothing is exposed by accident
	defaultShutdownTimeout = 10 * time.Second
	// maxClockResolution is the coarsest refresh of the cached ID clock
	// that still moves it once a tick.
	maxClockResolution = mig.Tick
)

// defaultWorkers is the default --workers: 0-15, a quarter of the 64
// worker IDs, leaving room for three more datacenters.
func defaultWorkers() workerid.Range { return workerid.Range{First: 0, Last: 15} }

// serveConfig is everything `mig serve` runs with, parsed and checked. The
// domain configurations in it are passed on as they are.
type serveConfig struct {
	worker workerid.Config  // Logger and Holder are set by runServe
	seq    seqfacade.Config // NodeName and Logger are set by runServe
	// seqEtcd is the etcd cluster of the sequences when it is not etcd's
	// (one cluster for every datacenter).
	seqEtcd    []string
	slew       clock.SlewConfig
	resolution time.Duration // of the cached ID clock (clock.Coarse)
	ntp        ntp.Config
	etcd       etcdConfig
	listen     string
	tls        tlsFiles
	// shutdownTimeout bounds the wait for in-flight requests on shutdown,
	// and separately the release of the worker ID after them.
	shutdownTimeout time.Duration
}

// serveFlags are the flags of `mig serve` as defined on a FlagSet; config
// turns them into a serveConfig.
type serveFlags struct {
	fs *flag.FlagSet

	dc, etcd, dataDir, listen string
	workers                   *rangeFlag
	others                    *othersFlag
	epoch                     *epochFlag
	ttl, margin, window       time.Duration
	etcdTimeout, startTimeout time.Duration
	borrow                    time.Duration
	backRate, forwardRate     float64
	resolution                time.Duration
	ntpServers                string
	ntpInterval, ntpTimeout   time.Duration
	ntpMaxOffset              time.Duration
	tlsCert, tlsKey, clientCA string
	etcdCert, etcdKey, etcdCA string
	etcdUser, etcdPassword    string
	shutdownTimeout           time.Duration
	logFormat, logLevel       string
	sectionSize, seqStep      uint64
	uidLimit                  uint64
	seqActivation             time.Duration
	seqNode                   string
	seqEtcd, seqHomes         string
	seqTTL, seqMargin         time.Duration
	seqTimeout, seqRebalance  time.Duration
	seqWeight                 float64
	seqMaxMoves               int
	advertise                 string
}

// defineServeFlags defines every flag of `mig serve` on fs.
func defineServeFlags(fs *flag.FlagSet) *serveFlags {
	f := &serveFlags{fs: fs, workers: &rangeFlag{r: defaultWorkers()}, others: &othersFlag{}, epoch: newEpochFlag()}

	fs.StringVar(&f.dc, "dc", defaultDatacenter, "this worker's `datacenter` name, the same for every worker of the datacenter")
	fs.Var(f.workers, "workers", "the datacenter's worker-ID `range` A-B (0..63), the same for every worker of the datacenter\nand disjoint from every other datacenter's")
	fs.Var(f.others, "other-dcs", "the other datacenters' ranges, `name=A-B,...` (like osaka=16-31,nagoya=32-47),\nrecorded in this datacenter's etcd, which refuses a worker that lists them otherwise")
	fs.StringVar(&f.etcd, "etcd", "", "comma-separated etcd `endpoints` of this datacenter's cluster;\nempty runs an embedded single-member etcd in --data-dir")
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir, "the `directory` of the embedded etcd (without --etcd)")
	fs.StringVar(&f.listen, "listen", defaultListen, "the `host:port` to serve Twirp, /metrics, /healthz and /readyz on")
	fs.Var(f.epoch, "epoch", "the `RFC3339` epoch of the IDs, the same for every worker of every datacenter")

	fs.DurationVar(&f.ttl, "lease-ttl", workerid.DefaultTTL, "the etcd lease TTL of the worker ID (at least 2s)")
	fs.DurationVar(&f.margin, "lease-margin", workerid.DefaultMargin, "how long before the lease could expire the worker stops issuing\n(less than half --lease-ttl)")
	fs.DurationVar(&f.window, "watermark-window", workerid.DefaultWindow, "how far ahead of the clock the time watermark is persisted")
	fs.DurationVar(&f.etcdTimeout, "etcd-timeout", workerid.DefaultRequestTimeout, "the timeout of every etcd call (at most a third of --lease-ttl)")
	fs.DurationVar(&f.startTimeout, "start-timeout", workerid.DefaultStartTimeout, "how long to try to claim a worker ID at start")
	fs.DurationVar(&f.borrow, "borrow", 0, "how far ahead of the clock a burst may issue IDs\n(0: the smaller of 1s and a quarter of --watermark-window)")

	fs.Float64Var(&f.backRate, "slew-back-rate", clock.DefaultBackRate, "after the wall clock steps back, the ID clock runs at (1 - this) of real speed\nuntil the wall clock catches up; in (0, 1)")
	fs.Float64Var(&f.forwardRate, "slew-forward-rate", 0, "after the wall clock steps forward, the ID clock runs at (1 + this) of real speed\nuntil it catches up; 0 follows the step at once. With --ntp-servers, a step past\n--ntp-max-offset is first held until an NTP answer confirms it, so a wrong step (a\nbad time source) never reaches the IDs. Without, following at once also follows a\nwrong step, and persists the watermark that far ahead: IDs stay dated ahead for a\nlong time; a rate (e.g. 1) bounds how far ahead that gets, at the cost of IDs dated\nbehind real time while a true step is caught up")
	fs.DurationVar(&f.resolution, "clock-resolution", clock.DefaultResolution, "how often the cached ID clock is refreshed (at most 10ms)")

	fs.StringVar(&f.ntpServers, "ntp-servers", "", "comma-separated NTP `servers` to check the wall clock against; empty disables the check")
	fs.DurationVar(&f.ntpInterval, "ntp-interval", ntp.DefaultInterval, "the wait between NTP checks")
	fs.DurationVar(&f.ntpTimeout, "ntp-timeout", ntp.DefaultTimeout, "the timeout of one NTP query")
	fs.DurationVar(&f.ntpMaxOffset, "ntp-max-offset", ntp.DefaultMaxOffset, "the largest offset from NTP time at which IDs are still issued; also how far the\nwall clock may step forward between NTP checks before the ID clock holds the step\nuntil NTP confirms it")

	fs.StringVar(&f.tlsCert, "tls-cert", "", "the server's certificate `file` (PEM); with --tls-key, serves HTTPS")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the server's private key `file` (PEM)")
	fs.StringVar(&f.clientCA, "client-ca", "", "a CA certificate `file` (PEM); when set, clients must present a certificate it signed")
	fs.StringVar(&f.etcdCert, "etcd-cert", "", "the client certificate `file` (PEM) for etcd")
	fs.StringVar(&f.etcdKey, "etcd-key", "", "the client key `file` (PEM) for etcd")
	fs.StringVar(&f.etcdCA, "etcd-ca", "", "the CA certificate `file` (PEM) that signed etcd's server certificates")
	fs.StringVar(&f.etcdUser, "etcd-user", "", "the etcd `user` (with --etcd-password)")
	fs.StringVar(&f.etcdPassword, "etcd-password", "", "the etcd user's `password`; prefer the environment variable to the command line")

	fs.Uint64Var(&f.sectionSize, "section-size", seqfacade.DefaultSectionSize, "consecutive uids that share one persisted max_seq; recorded in etcd at first start\nand never changeable after")
	fs.Uint64Var(&f.seqStep, "seq-step", seqfacade.DefaultStep, "how far max_seq moves ahead with each etcd write")
	fs.Uint64Var(&f.uidLimit, "uid-limit", seqfacade.DefaultUIDLimit, "uids are 1..this-1; recorded in etcd at first start and never changeable after")
	fs.StringVar(&f.seqEtcd, "seq-etcd", "", "comma-separated etcd `endpoints` of the cluster that holds the sequences of every datacenter\n(its members spanning at least three datacenters); empty: the sequences live in --etcd")
	fs.StringVar(&f.seqHomes, "seq-homes", "", "each group of sections' home `datacenter`s, like tokyo=0-167,osaka=168-335 (optionally with fallbacks:\ntokyo=0-167>osaka>nagoya); default with --seq-etcd: the groups spread evenly over --dc and --other-dcs.\nWith --other-dcs but no --seq-etcd, each datacenter's store serves only its home groups, which must be given")
	fs.DurationVar(&f.seqActivation, "seq-activation-delay", seqfacade.DefaultActivationDelay, "how long a sequence node waits before serving a group it gained when its previous owner did not\nrelease it; also how long each confirmation of the routing table lets a node serve")
	fs.StringVar(&f.seqNode, "seq-node", "", "this node's `name` among the sequence nodes (default: host name and --listen address)")
	fs.DurationVar(&f.seqTTL, "seq-lease-ttl", seqfacade.DefaultTTL, "the etcd lease TTL of a sequence node's registration: how soon a dead node's groups move\n(at least 2s; etcd may grant more)")
	fs.DurationVar(&f.seqMargin, "seq-lease-margin", seqfacade.DefaultMargin, "taken off a sequence node's every right to serve, for clock-rate differences between hosts")
	fs.DurationVar(&f.seqTimeout, "seq-etcd-timeout", seqfacade.DefaultRequestTimeout, "the timeout of a sequence node's etcd calls (at most a third of --seq-lease-ttl)")
	fs.DurationVar(&f.seqRebalance, "seq-rebalance-interval", seqfacade.DefaultRebalanceInterval, "the time between the arbiter's planned rounds (homes, weights, load)")
	fs.IntVar(&f.seqMaxMoves, "seq-max-moves", seqfacade.DefaultMaxMoves, "the most groups of sections one planned round moves between live nodes (negative: never)")
	fs.Float64Var(&f.seqWeight, "seq-weight", 1, "this node's relative capacity for sequence sections")
	fs.StringVar(&f.advertise, "advertise-addr", "", "the `host:port` clients reach this node at, published in the routing table\n(default: --listen, with the host name for an unspecified host)")

	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "on SIGINT or SIGTERM, how long to wait for requests in flight")
	fs.StringVar(&f.logFormat, "log-format", "text", "the log `format` on standard error: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "the lowest `level` logged: debug, info, warn or error")
	return f
}

// config checks the flags together and returns the configuration. Every
// error names the flags at fault and their values.
func (f *serveFlags) config() (serveConfig, error) {
	c := serveConfig{
		worker: workerid.Config{
			Datacenter:     f.dc,
			Range:          f.workers.r,
			Others:         f.others.m,
			Layout:         f.epoch.layout,
			TTL:            f.ttl,
			Margin:         f.margin,
			Window:         f.window,
			RequestTimeout: f.etcdTimeout,
			StartTimeout:   f.startTimeout,
			Borrow:         f.borrow,
		},
		seq: seqfacade.Config{
			NodeName:          f.seqNode,
			SectionSize:       f.sectionSize,
			Step:              f.seqStep,
			UIDLimit:          f.uidLimit,
			ActivationDelay:   f.seqActivation,
			Datacenter:        f.dc,
			Address:           f.advertise,
			Weight:            f.seqWeight,
			RebalanceInterval: f.seqRebalance,
			MaxMoves:          f.seqMaxMoves,
		},
		slew:       clock.SlewConfig{BackRate: f.backRate, ForwardRate: f.forwardRate, HoldForward: f.holdForward()},
		resolution: f.resolution,
		ntp: ntp.Config{
			Servers:   splitList(f.ntpServers),
			Interval:  f.ntpInterval,
			Timeout:   f.ntpTimeout,
			MaxOffset: f.ntpMaxOffset,
			// A worker that takes over a crashed one's ID starts up to a
			// window ahead; twice that leaves room for a chain of them.
			MaxLead: 2 * cmp.Or(f.window, workerid.DefaultWindow),
		},
		etcd: etcdConfig{
			endpoints: splitList(f.etcd),
			dataDir:   f.dataDir,
			certFile:  f.etcdCert,
			keyFile:   f.etcdKey,
			caFile:    f.etcdCA,
			user:      f.etcdUser,
			password:  f.etcdPassword,
		},
		listen:          f.listen,
		tls:             tlsFiles{cert: f.tlsCert, key: f.tlsKey, clientCA: f.clientCA},
		shutdownTimeout: f.shutdownTimeout,
	}

	// The domain packages validate their own configurations; blame finds
	// which flags made them fail.
	var defWorker workerid.Config
	defWorker.Datacenter, defWorker.Range = defaultDatacenter, defaultWorkers()
	if err := blame(f.fs, c.worker, defWorker, workerid.Config.Validate, []blamed[workerid.Config]{
		{"dc", func(c *workerid.Config, d workerid.Config) { c.Datacenter = d.Datacenter }},
		{"workers", func(c *workerid.Config, d workerid.Config) { c.Range = d.Range }},
		{"other-dcs", func(c *workerid.Config, d workerid.Config) { c.Others = d.Others }},
		{"lease-ttl", func(c *workerid.Config, d workerid.Config) { c.TTL = d.TTL }},
		{"lease-margin", func(c *workerid.Config, d workerid.Config) { c.Margin = d.Margin }},
		{"etcd-timeout", func(c *workerid.Config, d workerid.Config) { c.RequestTimeout = d.RequestTimeout }},
		{"watermark-window", func(c *workerid.Config, d workerid.Config) { c.Window = d.Window }},
		{"borrow", func(c *workerid.Config, d workerid.Config) { c.Borrow = d.Borrow }},
		{"start-timeout", func(c *workerid.Config, d workerid.Config) { c.StartTimeout = d.StartTimeout }},
	}); err != nil {
		return c, err
	}
	// In seqfacade.Config zero means "the default"; on the command line a
	// 0 is a mistake worth naming.
	for _, z := range []struct {
		name string
		v    uint64
	}{{"section-size", f.sectionSize}, {"seq-step", f.seqStep}, {"uid-limit", f.uidLimit}} {
		if z.v == 0 {
			return c, f.flagErr(errors.New("must be at least 1"), z.name)
		}
	}
	c.seq.Lease = lease.Config{TTL: f.seqTTL, RequestTimeout: f.seqTimeout}
	c.seq.Margin = f.seqMargin
	c.seq.RequestTimeout = c.seq.Lease.RequestTimeout
	c.seqEtcd = splitList(f.seqEtcd)
	if err := f.seqPlacement(&c); err != nil {
		return c, err
	}
	seqDefaults := seqfacade.Config{NodeName: "x", RequestTimeout: c.seq.RequestTimeout, Homes: c.seq.Homes, HomeOnly: c.seq.HomeOnly, Datacenter: c.seq.Datacenter}
	seqCheck := c.seq
	seqCheck.NodeName = cmp.Or(seqCheck.NodeName, "x") // runServe names the node
	if err := blame(f.fs, seqCheck, seqDefaults, seqfacade.Config.Validate, []blamed[seqfacade.Config]{
		{"section-size", func(c *seqfacade.Config, d seqfacade.Config) { c.SectionSize = d.SectionSize }},
		{"seq-step", func(c *seqfacade.Config, d seqfacade.Config) { c.Step = d.Step }},
		{"uid-limit", func(c *seqfacade.Config, d seqfacade.Config) { c.UIDLimit = d.UIDLimit }},
		{"seq-activation-delay", func(c *seqfacade.Config, d seqfacade.Config) { c.ActivationDelay = d.ActivationDelay }},
		{"seq-node", func(c *seqfacade.Config, d seqfacade.Config) { c.NodeName = d.NodeName }},
		{"seq-lease-ttl", func(c *seqfacade.Config, d seqfacade.Config) { c.Lease.TTL = d.Lease.TTL }},
		{"seq-lease-margin", func(c *seqfacade.Config, d seqfacade.Config) { c.Margin = d.Margin }},
		{"seq-etcd-timeout", func(c *seqfacade.Config, d seqfacade.Config) {
			c.Lease.RequestTimeout, c.RequestTimeout = d.Lease.RequestTimeout, d.RequestTimeout
		}},
		{"seq-weight", func(c *seqfacade.Config, d seqfacade.Config) { c.Weight = d.Weight }},
		{"seq-rebalance-interval", func(c *seqfacade.Config, d seqfacade.Config) { c.RebalanceInterval = d.RebalanceInterval }},
		{"seq-max-moves", func(c *seqfacade.Config, d seqfacade.Config) { c.MaxMoves = d.MaxMoves }},
		{"seq-homes", func(c *seqfacade.Config, d seqfacade.Config) { c.Homes = nil }},
	}); err != nil {
		return c, err
	}
	if err := blame(f.fs, c.ntp, ntp.Config{}, ntp.Config.Validate, []blamed[ntp.Config]{
		{"ntp-servers", func(c *ntp.Config, d ntp.Config) { c.Servers = d.Servers }},
		{"ntp-interval", func(c *ntp.Config, d ntp.Config) { c.Interval = d.Interval }},
		{"ntp-timeout", func(c *ntp.Config, d ntp.Config) { c.Timeout = d.Timeout }},
		{"ntp-max-offset", func(c *ntp.Config, d ntp.Config) { c.MaxOffset = d.MaxOffset }},
	}); err != nil {
		return c, err // before the slew's: --ntp-max-offset is its HoldForward too
	}
	if err := blame(f.fs, c.slew, clock.SlewConfig{}, clock.SlewConfig.Validate, []blamed[clock.SlewConfig]{
		{"slew-back-rate", func(c *clock.SlewConfig, d clock.SlewConfig) { c.BackRate = d.BackRate }},
		{"slew-forward-rate", func(c *clock.SlewConfig, d clock.SlewConfig) { c.ForwardRate = d.ForwardRate }},
		{"ntp-max-offset", func(c *clock.SlewConfig, d clock.SlewConfig) { c.HoldForward = d.HoldForward }},
	}); err != nil {
		return c, err
	}
	if c.resolution <= 0 || c.resolution > maxClockResolution {
		return c, f.flagErr(fmt.Errorf("must be positive and at most %v (one ID tick)", maxClockResolution), "clock-resolution")
	}
	if c.shutdownTimeout <= 0 {
		return c, f.flagErr(errors.New("must be positive"), "shutdown-timeout")
	}
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		return c, f.flagErr(err, "listen")
	}
	if err := c.tls.check(); err != nil {
		return c, f.flagErr(err, "tls-cert", "tls-key", "client-ca")
	}
	if err := c.etcd.check(); err != nil {
		return c, err // names its flags itself
	}
	if len(c.etcd.endpoints) == 0 {
		if err := (etcdlocal.Config{Dir: c.etcd.dataDir}).Validate(); err != nil {
			return c, f.flagErr(err, "data-dir")
		}
	}
	if _, err := parseLogFormat(f.logFormat); err != nil {
		return c, f.flagErr(err, "log-format")
	}
	if _, err := parseLogLevel(f.logLevel); err != nil {
		return c, f.flagErr(err, "log-level")
	}
	return c, nil
}

// holdForward is how large a step forward of the wall clock the ID clock
// follows unconfirmed: with an NTP check, steps past its limit wait for
// its confirmation (runServe gives the monitor the ID clock); without
// one, every step is followed, as nothing would confirm a held one. A
// negative limit yields a negative hold, which the NTP flags are blamed
// for.
func (f *serveFlags) holdForward() time.Duration {
	if len(splitList(f.ntpServers)) == 0 {
		return 0
	}
	return cmp.Or(f.ntpMaxOffset, ntp.DefaultMaxOffset)
}

// seqPlacement decides where sequences live and who serves which uids:
//
//   - one datacenter (no --other-dcs): every node of it may serve every
//     group, from --seq-etcd or else --etcd;
//   - several datacenters and --seq-etcd: one store for all, groups at
//     home in the datacenter --seq-homes gives them (default: spread
//     evenly over every datacenter named), falling back on the others;
//   - several datacenters without --seq-etcd: each datacenter's own
//     store serves only the groups --seq-homes gives it (required), and
//     refuses the others naming their datacenter. Without it, every
//     datacenter would count every uid on its own.
func (f *serveFlags) seqPlacement(c *serveConfig) error {
	groups := seqGroups(c.seq)
	if f.seqHomes != "" {
		h, err := seqfacade.ParseHomes(f.seqHomes)
		if err != nil {
			return f.flagErr(err, "seq-homes")
		}
		c.seq.Homes = h
		dcs := append([]string{f.dc}, slices.Collect(maps.Keys(f.others.m))...)
		for _, d := range h.Datacenters() {
			if !slices.Contains(dcs, d) {
				return f.flagErr(fmt.Errorf("datacenter %s is neither --dc nor in --other-dcs", d), "seq-homes", "dc", "other-dcs")
			}
		}
	}
	if len(f.others.m) == 0 {
		return nil
	}
	if len(c.seqEtcd) == 0 {
		if f.seqHomes == "" {
			return f.flagErr(errors.New("sequences across datacenters need --seq-etcd (one etcd cluster spanning the datacenters) or --seq-homes (the groups this datacenter's own store serves, disjoint from every other datacenter's): without either, every datacenter would count every uid on its own"),
				"other-dcs", "seq-etcd", "seq-homes")
		}
		c.seq.HomeOnly = true
		return nil
	}
	if f.seqHomes == "" && groups > 0 {
		c.seq.Homes = seqfacade.EvenHomes(groups, append([]string{f.dc}, slices.Collect(maps.Keys(f.others.m))...))
	}
	return nil
}

// seqGroups returns the number of groups of sections cfg makes, or 0 for
// a layout Validate refuses.
func seqGroups(cfg seqfacade.Config) int {
	if cfg.SectionSize == 0 || cfg.UIDLimit < cfg.SectionSize {
		return 0
	}
	gs := uint64(cfg.GroupSize)
	if gs == 0 {
		gs = seqfacade.DefaultGroupSize
	}
	sections := (cfg.UIDLimit + cfg.SectionSize - 1) / cfg.SectionSize
	if sections > seqfacade.MaxSections {
		return 0
	}
	return int((sections + gs - 1) / gs)
}

// flagErr wraps err with the flags it is about and their values:
// "--lease-ttl 2s, --lease-margin 3s: ...".
func (f *serveFlags) flagErr(err error, names ...string) error {
	return fmt.Errorf("%s: %w", describeFlags(f.fs, names), err)
}

func describeFlags(fs *flag.FlagSet, names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		v := fs.Lookup(n).Value.String()
		if v == "" || strings.ContainsAny(v, " \t") {
			v = fmt.Sprintf("%q", v)
		}
		parts[i] = "--" + n + " " + v
	}
	return strings.Join(parts, ", ")
}

// blamed is a flag that sets a field of a domain configuration C, and how
// to put that field back to its default.
type blamed[C any] struct {
	flag  string
	reset func(c *C, def C)
}

// blame validates c and, when it fails, names the flags at fault: those
// whose reset to the default alone makes c valid; failing that (flags
// wrong only together), those whose reset changes the error; failing that,
// all of them. def must be valid.
func blame[C any](fs *flag.FlagSet, c, def C, validate func(C) error, flags []blamed[C]) error {
	err := validate(c)
	if err == nil {
		return nil
	}
	var valid, changed, all []string
	for _, b := range flags {
		probe := c
		b.reset(&probe, def)
		perr := validate(probe)
		switch {
		case perr == nil:
			valid = append(valid, b.flag)
		case perr.Error() != err.Error():
			changed = append(changed, b.flag)
		}
		all = append(all, b.flag)
	}
	names := valid
	if len(names) == 0 {
		names = changed
	}
	if len(names) == 0 {
		names = all
	}
	return fmt.Errorf("%s: %w", describeFlags(fs, names), err)
}

// splitList splits a comma-separated list, dropping spaces and empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// rangeFlag is a flag.Value holding a worker-ID range "A-B". A range out of
// 0..63 or backwards is refused when the flag is set.
type rangeFlag struct{ r workerid.Range }

func (f *rangeFlag) String() string {
	if f == nil {
		return ""
	}
	return f.r.String()
}

func (f *rangeFlag) Set(s string) error {
	r, err := workerid.ParseRange(s)
	if err != nil {
		return err
	}
	f.r = r
	return nil
}

// othersFlag is a flag.Value holding other datacenters' ranges,
// "name=A-B,name=A-B". Each range is checked when the flag is set; how they
// fit with --dc and --workers is checked by workerid.Config.Validate.
type othersFlag struct{ m map[string]workerid.Range }

func (f *othersFlag) String() string {
	if f == nil || len(f.m) == 0 {
		return ""
	}
	var parts []string
	for _, dc := range slices.Sorted(maps.Keys(f.m)) {
		parts = append(parts, dc+"="+f.m[dc].String())
	}
	return strings.Join(parts, ",")
}

func (f *othersFlag) Set(s string) error {
	m := map[string]workerid.Range{}
	for _, item := range splitList(s) {
		dc, rs, ok := strings.Cut(item, "=")
		dc = strings.TrimSpace(dc)
		if !ok || dc == "" {
			return fmt.Errorf("%q is not name=A-B (like osaka=16-31)", item)
		}
		if _, dup := m[dc]; dup {
			return fmt.Errorf("datacenter %s listed twice", dc)
		}
		r, err := workerid.ParseRange(rs)
		if err != nil {
			return fmt.Errorf("datacenter %s: %w", dc, err)
		}
		m[dc] = r
	}
	f.m = m
	if len(m) == 0 {
		f.m = nil
	}
	return nil
}

// parseLogFormat accepts "text" and "json".
func parseLogFormat(s string) (string, error) {
	switch s {
	case "text", "json":
		return s, nil
	}
	return "", errors.New("must be text or json")
}

// parseLogLevel accepts slog's level names (debug, info, warn, error).
func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, errors.New("must be debug, info, warn or error")
	}
	return l, nil
}
