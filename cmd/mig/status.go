package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/migsvc/mig/clock"
)

var statusCommand = command{
	name:     "status",
	synopsis: "--etcd ENDPOINTS [--seq-etcd ENDPOINTS] [--json] [--timeout D] [--prefix P]",
	summary:  "show the deployment as etcd holds it: worker IDs, watermarks, sequence nodes, routing",
	about: `
Status reads what the mig serve processes of a deployment keep in etcd and
prints it; it writes nothing. It shows the recorded ID layout and epoch, the
datacenter the cluster belongs to, every datacenter's worker-ID range, each
worker ID held (holder, lease, time to live) and its time watermark with how
far it is ahead of this host's clock, then the sequences: their recorded
configuration, the highest persisted max_seq, the registered nodes with
their last load report, the arbiter and the routing table (the runs of
groups each node owns).

--etcd is the datacenter's etcd cluster, as given to mig serve; for a
mig serve with an embedded etcd, the endpoint it logs as "embedded etcd
ready". When the sequences live in a cluster of their own (mig serve
--seq-etcd), give it as --seq-etcd. Every etcd call is bounded by
--timeout. A value that cannot be parsed is listed under "Problems" with
its key, and the rest is still shown.

--json prints one JSON document instead, 64-bit numbers as strings.

Exit status: 0 when etcd was read, 1 when it could not be (the error names
the endpoints), 2 for a bad flag.`,
	flags: statusFlags,
}

func statusFlags(fs *flag.FlagSet) func(context.Context, *proc, []string) int {
	of := defineOpsFlags(fs)
	asJSON := fs.Bool("json", false, "print one JSON document (64-bit numbers as strings) instead of text")
	return func(ctx context.Context, p *proc, args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(p.stderr, "mig status: unexpected argument %q: status takes flags only\nRun 'mig status --help' for usage.\n", args[0])
			return exitUsage
		}
		if err := of.check(); err != nil {
			fmt.Fprintf(p.stderr, "mig status: %v\nRun 'mig status --help' for usage.\n", err)
			return exitUsage
		}
		d, err := readStatus(ctx, of)
		if err != nil {
			fmt.Fprintf(p.stderr, "mig status: %v\n", err)
			return exitFail
		}
		if *asJSON {
			b, _ := json.MarshalIndent(d, "", "  ") // plain data: cannot fail
			fmt.Fprintf(p.stdout, "%s\n", b)
			return exitOK
		}
		printStatus(p.stdout, d)
		return exitOK
	}
}

// readStatus connects to the clusters of f and reads the deployment.
func readStatus(ctx context.Context, f *opsFlags) (*deployment, error) {
	etc, err := dialOps(f, splitList(f.etcd))
	if err != nil {
		return nil, err
	}
	defer etc.close()
	var seq *opsEtcd
	if eps := splitList(f.seqEtcd); len(eps) > 0 {
		if seq, err = dialOps(f, eps); err != nil {
			return nil, fmt.Errorf("--seq-etcd: %w", err)
		}
		defer seq.close()
	}
	return readDeployment(ctx, etc, seq, f.keyPrefix(), clock.NewReal().Now().Wall)
}

// printStatus writes d as aligned text.
func printStatus(w io.Writer, d *deployment) {
	var b strings.Builder
	tw := func() *tabwriter.Writer { return tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0) }
	field := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "%-14s%s\n", name, fmt.Sprintf(format, args...))
	}

	field("etcd", "%s (revision %d), keys under %s/", strings.Join(d.Etcd.Endpoints, ","), d.Etcd.Revision, d.Prefix)
	if d.SeqEtcd != nil {
		field("seq etcd", "%s (revision %d)", strings.Join(d.SeqEtcd.Endpoints, ","), d.SeqEtcd.Revision)
	} else {
		field("seq etcd", "the same cluster")
	}
	field("read at", "%s (this host's clock)", d.Now)

	b.WriteString("\n")
	if l := d.IDLayout; l != nil {
		field("ID layout", "epoch %s, ticks of %s, %d/%d/%d bits of tick/worker/sequence", l.Epoch, l.Tick, l.TickBits, l.WorkerBits, l.SeqBits)
	} else {
		field("ID layout", "not recorded (%s/layout): no worker has started on this cluster", d.Prefix)
	}
	if d.Datacenter != "" {
		field("datacenter", "%s (recorded at %s/cluster)", d.Datacenter, d.Prefix)
	} else {
		field("datacenter", "not recorded at %s/cluster", d.Prefix)
	}
	if len(d.Datacenters) == 0 {
		field("worker ranges", "none recorded")
	} else {
		field("worker ranges", "%d datacenters", len(d.Datacenters))
		t := tw()
		fmt.Fprintln(t, "  DATACENTER\tWORKER IDS\t")
		for _, r := range d.Datacenters {
			mark := ""
			if r.Datacenter == d.Datacenter {
				mark = "this cluster's"
			}
			fmt.Fprintf(t, "  %s\t%d-%d\t%s\n", r.Datacenter, r.First, r.Last, mark)
		}
		t.Flush()
	}

	held := 0
	for _, s := range d.Workers {
		if s.Held {
			held++
		}
	}
	if len(d.Workers) == 0 {
		field("worker IDs", "none held, no watermark")
	} else {
		field("worker IDs", "%d held; %d with a watermark or a claim", held, len(d.Workers))
		t := tw()
		fmt.Fprintln(t, "  ID\tSTATE\tDATACENTER\tHOLDER\tLEASE\tTTL LEFT\tWATERMARK\tAHEAD OF NOW")
		for _, s := range d.Workers {
			state := "free"
			if s.Held {
				state = "held"
			}
			ahead := "-"
			if s.AheadSeconds != nil {
				ahead = fmt.Sprintf("%+.1fs", *s.AheadSeconds)
			}
			fmt.Fprintf(t, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, state, dash(s.Datacenter), dash(s.Holder), dash(s.Lease),
				ttlText(s.TTLLeft), dash(s.WatermarkTime), ahead)
		}
		t.Flush()
	}

	b.WriteString("\n")
	printSeqStatus(&b, d, tw, field)

	if len(d.Problems) > 0 {
		b.WriteString("\nProblems (values that could not be read)\n")
		for _, p := range d.Problems {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	// Tables pad every cell but the last; an empty last cell leaves spaces.
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	io.WriteString(w, strings.Join(lines, "\n"))
}

func printSeqStatus(b *strings.Builder, d *deployment, tw func() *tabwriter.Writer, field func(string, string, ...any)) {
	s := d.Seq
	if c := s.Config; c != nil {
		field("sequences", "sections of %d uids, %d sections a group, uids below %d: %d groups; step %d; value format %d",
			c.SectionSize, c.GroupSize, c.UIDLimit, c.Groups, c.Step, c.Format)
		if c.Datacenter != "" {
			field("", "datacenter %s's own store (serves only its home groups)", c.Datacenter)
		} else {
			field("", "shared by every datacenter")
		}
		if c.Homes != "" {
			field("homes", "%s", c.Homes)
		}
	} else {
		field("sequences", "no configuration at %s/seq/config: no sequence node has started on this cluster", d.Prefix)
	}
	if m := s.MaxSeq; m != nil {
		if m.GroupsWritten == 0 {
			field("max_seq", "no group written yet: every uid is at 0")
		} else {
			field("max_seq", "%d of %d groups written; highest %d (section %d, group %d)",
				m.GroupsWritten, s.Config.Groups, m.Highest, m.HighestSection, m.HighestGroup)
		}
	}

	registered := 0
	for _, n := range s.Nodes {
		if n.Registered {
			registered++
		}
	}
	if len(s.Nodes) == 0 {
		field("nodes", "none registered")
	} else {
		field("nodes", "%d registered", registered)
		t := tw()
		fmt.Fprintln(t, "  NAME\tADDRESS\tDATACENTER\tWEIGHT\tDRAINING\tTTL LEFT\tLOAD (CALLS/S)\tGROUPS")
		for _, n := range s.Nodes {
			weight, draining := "-", "-"
			if n.Registered {
				weight, draining = strconv.FormatFloat(n.Weight, 'g', -1, 64), "no"
				if n.Draining {
					draining = "yes"
				}
			}
			load := "-"
			if n.Load != nil {
				load = strconv.FormatFloat(*n.Load, 'f', 1, 64)
			}
			name := n.Name
			if !n.Registered {
				name += " (not registered)"
			}
			fmt.Fprintf(t, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", name, dash(n.Address), dash(n.Datacenter), weight, draining, ttlText(n.TTLLeft), load, n.GroupsOwned)
		}
		t.Flush()
	}
	if s.Arbiter != "" {
		field("arbiter", "%s", s.Arbiter)
	} else {
		field("arbiter", "none: no routing table is written until a node takes the role")
	}
	if r := s.Routing; r != nil {
		field("routing", "version %d, %d groups", r.Version, r.Groups)
		t := tw()
		fmt.Fprintln(t, "  OWNER\tGROUPS\tRANGES")
		for _, o := range r.Owners {
			name := o.Owner
			switch {
			case name == "":
				name = "(no live node)"
			case !o.Registered:
				name += " (not registered: moves at the next round)"
			}
			fmt.Fprintf(t, "  %s\t%d\t%s\n", name, o.Groups, o.Ranges)
		}
		t.Flush()
	} else {
		field("routing", "no table at %s/seq/routing", d.Prefix)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ttlText(ttl *int64) string {
	switch {
	case ttl == nil:
		return "-"
	case *ttl < 0:
		return "expired"
	}
	return strconv.FormatInt(*ttl, 10) + "s"
}
