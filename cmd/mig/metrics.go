package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/clock/ntp"
	"github.com/migsvc/mig/seqfacade"
	"github.com/migsvc/mig/workerid"
)

// registerMetrics exports the state of the worker, the ID clock and the NTP
// monitor on reg, the server's own registry. Every value is read when
// /metrics is scraped, from the Status snapshots the packages keep; nothing
// here touches the hot path.
func registerMetrics(reg prometheus.Registerer, w *workerid.Worker, slew *clock.Slewing, ntp *ntp.Monitor) error {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: name, Help: help}, f)
	}
	stats := func(f func(workerid.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(w.Status().Stats)) }
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	cs := []prometheus.Collector{
		gauge("worker_id", "The worker ID held, or -1 while none is (fenced or re-claiming).", func() float64 {
			if st := w.Status(); st.Held {
				return float64(st.WorkerID)
			}
			return -1
		}),
		gauge("worker_lease_deadline_headroom_seconds", "Time left before the worker fences itself unless a lease renewal is acknowledged; 0 while no worker ID is held.", func() float64 {
			return max(w.Status().DeadlineHeadroom.Seconds(), 0)
		}),
		gauge("worker_watermark_headroom_seconds", "How far the persisted time watermark is ahead of the ID clock; 0 while no worker ID is held.", func() float64 {
			return w.Status().WatermarkHeadroom.Seconds()
		}),
		counter("worker_claims_total", "Worker IDs claimed (the first claim and every re-claim after a fence).", stats(func(s workerid.Stats) uint64 { return s.Claims })),
		counter("worker_lease_renewals_total", "Lease renewals acknowledged by etcd.", stats(func(s workerid.Stats) uint64 { return s.Renewals })),
		counter("worker_lease_renewal_failures_total", "Lease renewals that failed or timed out.", stats(func(s workerid.Stats) uint64 { return s.RenewalFailures })),
		counter("worker_fences_total", "Times the worker stopped issuing because it could not prove it still held its worker ID.", stats(func(s workerid.Stats) uint64 { return s.Fences })),
		counter("worker_watermark_writes_total", "Time watermarks persisted.", stats(func(s workerid.Stats) uint64 { return s.WatermarkWrites })),
		counter("worker_watermark_write_failures_total", "Time watermark writes that failed or timed out.", stats(func(s workerid.Stats) uint64 { return s.WatermarkFailures })),
		counter("worker_watermark_late_writes_total", "Time watermark writes that found the watermark changed since the worker last wrote it: one of its own writes that timed out landed later (or someone else wrote the key). Every write compares the watermark's revision, so a late one never lowers it.", stats(func(s workerid.Stats) uint64 { return s.WatermarkLateWrites })),

		gauge("clock_offset_seconds", "The ID clock minus the wall clock it follows (less any held step): positive while the ID clock is ahead (after a step back of the wall clock, or a raise over a watermark).", func() float64 {
			return slew.Status().Offset.Seconds()
		}),
		gauge("clock_slewing", "1 while the ID clock runs slower or faster than real time to meet the wall clock, else 0.", func() float64 {
			return b2f(slew.Status().Slewing)
		}),
		counter("clock_steps_back_total", "Steps back of the wall clock seen by the ID clock.", func() float64 { return float64(slew.Status().StepsBack) }),
		counter("clock_steps_forward_total", "Steps forward of the wall clock seen by the ID clock.", func() float64 { return float64(slew.Status().StepsForward) }),
		gauge("clock_held_step_seconds", "The part of the wall clock's steps forward that the ID clock holds back until an NTP answer confirms it; 0 when none.", func() float64 {
			return slew.Status().Held.Seconds()
		}),
		counter("clock_raises_total", "Times the ID clock was raised over a persisted watermark.", func() float64 { return float64(slew.Status().Raises) }),

		gauge("ntp_enabled", "1 when NTP servers are configured, else 0.", func() float64 { return b2f(ntp.Status().Enabled) }),
		gauge("ntp_safe", "1 while the wall clock the ID clock follows (less any held step) is within --ntp-max-offset of NTP time, and the ID clock not further ahead than twice --watermark-window beyond that (or NTP is not checked), else 0; at 0 no IDs are issued.", func() float64 {
			return b2f(ntp.Safe())
		}),
		gauge("ntp_offset_seconds", "NTP time minus the wall clock the ID clock follows (less any held step), from the latest valid NTP answer; 0 before the first.", func() float64 {
			return ntp.Status().Offset.Seconds()
		}),
		gauge("ntp_clock_lead_seconds", "How far the ID clock was ahead of NTP time (negative: behind) at the latest valid NTP answer; past --ntp-max-offset plus twice --watermark-window no IDs are issued.", func() float64 {
			return ntp.Status().Lead.Seconds()
		}),
		gauge("ntp_last_success_timestamp_seconds", "Unix time of the latest valid NTP answer; 0 before the first.", func() float64 {
			t := ntp.Status().LastSuccess
			if t.IsZero() {
				return 0
			}
			return float64(t.UnixNano()) / 1e9
		}),
		counter("ntp_query_failures_total", "NTP queries that failed or got an invalid answer.", func() float64 { return float64(ntp.Status().Failures) }),
		counter("ntp_steps_confirmed_total", "NTP rounds that found a step forward held by the ID clock true, and released it.", func() float64 { return float64(ntp.Status().Confirmed) }),
		counter("ntp_steps_refuted_total", "NTP rounds that found a step forward held by the ID clock wrong: it stays held.", func() float64 { return float64(ntp.Status().Refuted) }),
		buildInfo(readBuild()),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// buildInfo is the gauge mig_build_info{version,revision,goversion} 1, as
// `mig version` prints them, so that dashboards show which build each
// worker runs.
func buildInfo(b build) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "mig",
		Name:        "build_info",
		Help:        "Always 1; its labels say which build of mig runs: module version, VCS revision (unknown when not recorded) and Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.Go},
	})
	g.Set(1)
	return g
}

// registerSeqMetrics exports the sequence node's counters on reg.
func registerSeqMetrics(reg prometheus.Registerer, n *seqfacade.Node) error {
	stat := func(f func(seqfacade.Stats) float64) func() float64 {
		return func() float64 { return f(n.Stats()) }
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_serving", Help: "1 while this node answers every sequence call (registered, a routing table, no group activating, the table confirmed), else 0."},
			func() float64 {
				if n.Ready() == nil {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_taken_total", Help: "Sequence values handed out by the node."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.Issued) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_extensions_total", Help: "max_seq writes to etcd (one per extension round of a group of sections)."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.Writes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_store_txns_total", Help: "etcd transactions the node's max_seq reads and writes took: concurrent ones share one."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.StoreTxns) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_extension_failures_total", Help: "max_seq writes refused or of unknown outcome."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.WriteFailures) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_extension_waits_total", Help: "Calls that waited for an extension to be persisted."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.Waits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_unavailable_total", Help: "Sequence calls answered unavailable."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.Unavailable) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_group_loads_total", Help: "Groups of sections this node read from etcd to serve them."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.GroupLoads) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_handoffs_total", Help: "Groups of sections this node served from the state their previous owner handed them off in, without reading etcd."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.Handoffs) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_releases_handed_total", Help: "Releases of groups this node answered directly to their next owners, which asked for them (their state in the answer), instead of only writing them to etcd."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.HandedOffDirectly) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_releases_pulled_total", Help: "Releases of groups given to this node that it took directly from their previous owners, without waiting for them in etcd."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.PulledReleases) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_release_pull_failures_total", Help: "Requests for releases to previous owners that got no answer: the groups' releases were then awaited in etcd."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.PullFailures) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_vouched_starts_total", Help: "Groups of sections this node began to serve without the activation delay after a crash: the table vouched that their previous owner had stopped confirming a delay before."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.Vouched) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_registrations_lost_total", Help: "Registrations this sequence node lost (its lease gone from etcd): its groups moved, and it registered anew."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.LeaseLosses) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_lease_resumes_total", Help: "Times this sequence node's lease passed its deadline unrenewed (an etcd election) and etcd still held it: the node kept its registration and groups."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.LeaseResumes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_sections_loaded", Help: "Sections with cur_seq memory."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.SectionsLoaded) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_groups_loaded", Help: "Groups of sections served now."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.GroupsLoaded) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_routing_version", Help: "Version of the sequence routing table this node serves by (0: none)."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.RoutingVersion) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_groups_owned", Help: "Groups of sections the routing table gives this node."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.GroupsOwned) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_groups_activating", Help: "Groups this node gained that wait their activation delay (their previous owner has not released them)."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.GroupsActivating) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_load", Help: "Sequence calls a second this node served over its last load report (what the arbiter balances)."},
			stat(func(s seqfacade.Stats) float64 { return s.Load })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_draining", Help: "1 while this node hands its groups off before stopping, else 0."},
			stat(func(s seqfacade.Stats) float64 {
				if s.Draining {
					return 1
				}
				return 0
			})),
		movesCollector{n},
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "mig", Name: "seq_redirects_total", Help: "Requests for uids another node serves, answered with the routing table."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.Redirects) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_arbiter", Help: "1 while this node is the arbiter that writes the routing table, else 0."},
			stat(func(s seqfacade.Stats) float64 {
				if s.Arbiter {
					return 1
				}
				return 0
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "mig", Name: "seq_cur_seq_bytes", Help: "Memory of the loaded sections' cur_seq counters (estimate: 8 bytes a uid of a dense section, about 24 a uid touched of a sparse one)."},
			stat(func(s seqfacade.Stats) float64 { return float64(s.CurSeqBytes) })),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// movesCollector exports mig_seq_moves_total by reason: the groups the
// tables this node wrote as arbiter moved.
type movesCollector struct{ n *seqfacade.Node }

var movesDesc = prometheus.NewDesc("mig_seq_moves_total",
	"Groups moved between nodes by the routing tables this node wrote as arbiter, by reason (new, failover, drain, home, balance, load, restart, reset).",
	[]string{"reason"}, nil)

func (c movesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- movesDesc }

func (c movesCollector) Collect(ch chan<- prometheus.Metric) {
	moves := c.n.Stats().Moves
	for _, r := range []string{seqfacade.MoveNew, seqfacade.MoveFailover, seqfacade.MoveDrain, seqfacade.MoveHome,
		seqfacade.MoveBalance, seqfacade.MoveLoad, seqfacade.MoveRestart} {
		ch <- prometheus.MustNewConstMetric(movesDesc, prometheus.CounterValue, float64(moves[r]), r)
	}
}
