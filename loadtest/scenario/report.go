package scenario

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteResult writes r for people: the timeline, the requests, the
// unavailability seen, the checker's verdict and PASS or FAIL.
func WriteResult(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "== scenario %s: %s\n", r.Scenario, r.About)
	s := r.Settings
	fmt.Fprintf(&b, "settings: fault %s; lease TTL %s, margin %s, etcd timeout %s, watermark window %s, sequence activation delay %s",
		s.Duration, s.LeaseTTL, s.LeaseMargin, s.EtcdTimeout, s.WatermarkWindow, strings.SplitN(s.SeqActivationDelay, " ", 2)[0])
	if s.NTPCheck {
		b.WriteString("; every server checks its clock against NTP (a fake server answering the host's time)")
	}
	if s.ClockRate != 1 {
		fmt.Fprintf(&b, "; BROKEN BUILD: monotonic clocks at %v", s.ClockRate)
	}
	fmt.Fprintf(&b, "\nload: %s\n", s.Load)
	b.WriteString("timeline:\n")
	for _, e := range r.Timeline {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	if r.DroppedEvents > 0 {
		fmt.Fprintf(&b, "  ... and %d more events\n", r.DroppedEvents)
	}
	writeLoad(&b, "ids", r.IDs)
	if r.Seqs.Attempted > 0 {
		writeLoad(&b, "seqs", r.Seqs)
		writeLoad(&b, "curl", r.Curl)
	}
	b.WriteString("longest wait (from the first request that failed, or the send of a late one, to the next answer):\n")
	fmt.Fprintf(&b, "  %-30s %s\n", "a client, IDs:", describeOutage(r.IDs.LongestUnavailable, r.IDs.Who, r.IDs.When))
	for i, st := range r.IDDatacenters {
		fmt.Fprintf(&b, "  %-30s %.3fs (%d ok, %d failed)\n", "an ID client of "+dcName(i)+":", st.LongestUnavailable, st.Succeeded, st.Failed)
	}
	if r.Seqs.Attempted > 0 {
		fmt.Fprintf(&b, "  %-30s %s\n", "a client, sequences:", describeOutage(r.Seqs.LongestUnavailable, r.Seqs.Who, r.Seqs.When))
		fmt.Fprintf(&b, "  %-30s %s\n", "the client that does not route:", describeOutage(r.Curl.LongestUnavailable, r.Curl.Who, r.Curl.When))
		writeUIDs(&b, r.SeqUIDs)
	}
	for _, sv := range r.Servers {
		if sv.Succeeded+sv.Failed == 0 || sv.Succeeded == 0 {
			fmt.Fprintf(&b, "  %-30s never answered (%d attempts)\n", "server "+sv.Name+":", sv.Failed)
			continue
		}
		fmt.Fprintf(&b, "  %-30s %.3fs (%d ok, %d failed first attempts)\n", "server "+sv.Name+":", sv.LongestUnavailable, sv.Succeeded, sv.Failed)
	}
	if len(r.Figures) > 0 {
		b.WriteString("measured:\n")
		for _, f := range r.Figures {
			fmt.Fprintf(&b, "  %s: %.3f", f.Name, f.Value)
			if f.Bound > 0 {
				fmt.Fprintf(&b, " (bound %.3f: %s)", f.Bound, map[bool]string{true: "within", false: "OVER"}[f.Within])
			}
			if f.Note != "" {
				fmt.Fprintf(&b, "; %s", f.Note)
			}
			b.WriteString("\n")
		}
	}
	if l := r.Latency; l.Home.Count+l.Remote.Count > 0 {
		b.WriteString("NextSeq latency while no fault was under way (ms):\n")
		for _, x := range []struct {
			what string
			l    Latency
		}{{"routed, uid homed here", l.Home}, {"routed, uid homed elsewhere", l.Remote}, {"curl, uid homed here", l.CurlHome}, {"curl, uid homed elsewhere", l.CurlRemote}} {
			fmt.Fprintf(&b, "  %-28s n=%-6d p50 %6.2f  p90 %6.2f  p99 %6.2f  max %7.2f\n", x.what+":", x.l.Count, x.l.P50, x.l.P90, x.l.P99, x.l.Max)
		}
	}
	if r.Seqs.Values > 0 {
		fmt.Fprintf(&b, "max_seq writes: %.0f for %d sequence values: %.0f a million\n", r.SeqExtensions, r.Seqs.Values+r.Curl.Values, r.WritesPerMillion)
	}
	fmt.Fprintf(&b, "check: %s\n", r.Check.Summary())
	if r.Check.Porcupine.Ran {
		fmt.Fprintf(&b, "porcupine: %d operations on %d uids: %d not linearizable, %d undecided\n",
			r.Check.Porcupine.Ops, r.Check.Porcupine.UIDs, r.Check.Porcupine.Illegal, r.Check.Porcupine.Unknown)
	}
	for _, v := range r.Check.Details {
		fmt.Fprintf(&b, "  VIOLATION %s: %s\n", v.Kind, v.Message)
	}
	if n := r.Check.Violations - int64(len(r.Check.Details)); n > 0 {
		fmt.Fprintf(&b, "  ... and %d more violations\n", n)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM %s\n", p)
	}
	if r.Dir != "" {
		fmt.Fprintf(&b, "logs: %s\n", r.Dir)
	}
	if r.OK {
		fmt.Fprintf(&b, "PASS %s (%.1fs)\n", r.Scenario, r.Elapsed)
	} else {
		fmt.Fprintf(&b, "FAIL %s (%.1fs)\n", r.Scenario, r.Elapsed)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeLoad(b *strings.Builder, what string, s LoadStats) {
	fmt.Fprintf(b, "%-5s %d requests attempted, %d succeeded, %d failed", what+":", s.Attempted, s.Succeeded, s.Failed)
	if s.Canceled > 0 {
		fmt.Fprintf(b, ", %d cut off at the end", s.Canceled)
	}
	fmt.Fprintf(b, "; %d values; %d attempts at a server, %d failed", s.Values, s.Attempts, s.FailedAttempts)
	if len(s.ErrorsByCode) > 0 {
		b.WriteString("; failed requests by code:")
		for _, c := range slices.Sorted(maps.Keys(s.ErrorsByCode)) {
			fmt.Fprintf(b, " %s %d", c, s.ErrorsByCode[c])
		}
	}
	b.WriteString("\n")
}

func describeOutage(secs float64, who string, when float64) string {
	if secs == 0 {
		return "0s"
	}
	return fmt.Sprintf("%.3fs (%s, until %+.3fs)", secs, who, when)
}

// writeUIDs writes the longest wait of the uids homed in each
// datacenter, as the clients of each datacenter saw them.
func writeUIDs(b *strings.Builder, uids []UIDStats) {
	if len(uids) == 0 {
		return
	}
	b.WriteString("  the longest wait of a uid, by home (rows) and the clients' datacenter (columns):\n")
	fmt.Fprintf(b, "  %-8s", "")
	for i := range uids[0].Longest {
		fmt.Fprintf(b, " %8s", dcName(i))
	}
	b.WriteString("\n")
	var homes []string
	worst := map[string][]float64{}
	for _, u := range uids {
		if _, ok := worst[u.Home]; !ok {
			homes = append(homes, u.Home)
			worst[u.Home] = make([]float64, len(u.Longest))
		}
		for i, v := range u.Longest {
			worst[u.Home][i] = max(worst[u.Home][i], v)
		}
	}
	for _, h := range homes {
		fmt.Fprintf(b, "  %-8s", h)
		for _, v := range worst[h] {
			fmt.Fprintf(b, " %7.3fs", v)
		}
		b.WriteString("\n")
	}
}
