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
	}
	b.WriteString("longest wait (from the first request that failed, or the send of a late one, to the next answer):\n")
	fmt.Fprintf(&b, "  %-26s %s\n", "a client, IDs:", describeOutage(r.IDs.LongestUnavailable, r.IDs.Who, r.IDs.When))
	if r.Seqs.Attempted > 0 {
		fmt.Fprintf(&b, "  %-26s %s\n", "a client, sequences:", describeOutage(r.Seqs.LongestUnavailable, r.Seqs.Who, r.Seqs.When))
	}
	for i, sv := range r.SeqDatacenters {
		fmt.Fprintf(&b, "  %-26s %.3fs (%d ok, %d failed)", sv.Name+":", sv.LongestUnavailable, sv.Succeeded, sv.Failed)
		if i < len(r.SeqUIDs) {
			fmt.Fprintf(&b, "; one uid: %.3fs (%s)", r.SeqUIDs[i].LongestUnavailable, r.SeqUIDs[i].Name)
		}
		b.WriteString("\n")
	}
	for _, sv := range r.Servers {
		if sv.Succeeded+sv.Failed == 0 || sv.Succeeded == 0 {
			fmt.Fprintf(&b, "  %-26s never answered (%d attempts)\n", "server "+sv.Name+":", sv.Failed)
			continue
		}
		fmt.Fprintf(&b, "  %-26s %.3fs (%d ok, %d failed first attempts)\n", "server "+sv.Name+":", sv.LongestUnavailable, sv.Succeeded, sv.Failed)
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
