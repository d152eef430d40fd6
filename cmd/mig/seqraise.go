package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/seqfacade"
)

var seqRaiseCommand = command{
	name:     "seq-raise",
	synopsis: "--etcd ENDPOINTS [--seq-etcd ENDPOINTS] [--to N | --above-max] [--dry-run] [--force]",
	summary:  "raise every section's persisted max_seq, so that every uid continues above all its past values",
	about: `
Seq-raise raises the persisted max_seq of every section of the uid space to
at least N, so that every uid's next sequence is above N. It is the safe
alternative to deleting <prefix>/seq/, which sends every uid's sequence back
to 0: clients that remember a sequence would see it go backwards, and
values would be handed out twice.

Without --to (or with --above-max), N is the highest max_seq of any section
plus one step (the recorded step): every uid then continues above every
value any uid ever had. --to N sets N yourself, for example above a bound
known from outside etcd after restoring etcd from a backup (a restore can
lose max_seq writes made after the backup, and with them the only record of
values handed out since). A section already at or above N is left as it is:
nothing is ever lowered.

Every group of sections the layout has is written, including groups that
were never written (whose key is absent): after a restore from a backup
those may have handed out values too. Each group is one etcd transaction
that compares the group key's revision with the one just read, so a write
of anyone else in between is never overwritten: it is read again and
raised from there.

It refuses while any sequence node is registered, unless --force: a live
node may be in the middle of extending a group. The compare protects the
write anyway (the node's own write then fails and it re-reads the raised
value before serving more), but with the nodes stopped the result is simple
to check, and no node hands out values below N after this command returns.

To change the sequences' layout (--section-size, --uid-limit), which the
recorded configuration otherwise forbids: stop every node; note the
highest max_seq H and the step S ('mig status', or 'mig seq-raise
--dry-run'); delete <prefix>/seq/; run 'mig seq-raise --to H+S
--section-size NEW --uid-limit NEW', which writes every group of the new
layout; then start the nodes with the new layout. --section-size and
--uid-limit are used only when no configuration is recorded.

Then it deletes every release marker (<prefix>/seq/released/): a marker
that hands a group off carries the max_seqs the group was released at, and
the group's next owner serves from it without reading the group; after a
restore those may be below values handed out since. Without its marker a
group's next owner waits its activation delay, once.

--dry-run prints what would be written and writes nothing.

Exit status: 0 when every section is at or above N (or nothing was to be
done), 1 when it refused or failed (what was written is printed), 2 for a
bad flag.`,
	flags: seqRaiseFlags,
}

// seqRaiseAttempts bounds the writes of one group that find the group
// changed under them (a live node extending it, with --force).
const seqRaiseAttempts = 10

func seqRaiseFlags(fs *flag.FlagSet) func(context.Context, *proc, []string) int {
	of := defineOpsFlags(fs)
	to := fs.Uint64("to", 0, "raise every section to at least this max_seq (default: the highest max_seq plus one step)")
	aboveMax := fs.Bool("above-max", false, "raise every section above the highest max_seq by one step (what happens without --to)")
	dryRun := fs.Bool("dry-run", false, "print what would be written, and write nothing")
	force := fs.Bool("force", false, "raise even while sequence nodes are registered (each write still compares the group's revision)")
	sectionSize := fs.Uint64("section-size", 0, "with no configuration recorded: the section size of the layout to write (default: none)")
	uidLimit := fs.Uint64("uid-limit", 0, "with no configuration recorded: the uid limit of the layout to write (default: none)")
	return func(ctx context.Context, p *proc, args []string) int {
		usage := func(format string, a ...any) int {
			fmt.Fprintf(p.stderr, "mig seq-raise: %s\nRun 'mig seq-raise --help' for usage.\n", fmt.Sprintf(format, a...))
			return exitUsage
		}
		if len(args) > 0 {
			return usage("unexpected argument %q: seq-raise takes flags only", args[0])
		}
		if err := of.check(); err != nil {
			return usage("%v", err)
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		switch {
		case set["to"] && *aboveMax:
			return usage("--to and --above-max go separately: --to sets the max_seq, --above-max computes it")
		case set["to"] && *to == 0:
			return usage("--to 0 raises nothing: give a max_seq of at least 1")
		case *to > seqfacade.MaxSeq:
			return usage("--to %d: above the highest sequence there is, %d", *to, uint64(seqfacade.MaxSeq))
		}
		r := &raiser{out: p.stdout, to: *to, dryRun: *dryRun, force: *force, sectionSize: *sectionSize, uidLimit: *uidLimit, prefix: of.keyPrefix()}
		eps := splitList(of.seqEtcd)
		if len(eps) == 0 {
			eps = splitList(of.etcd)
		}
		e, err := dialOps(of, eps)
		if err != nil {
			fmt.Fprintf(p.stderr, "mig seq-raise: %v\n", err)
			return exitFail
		}
		defer e.close()
		r.etcd = e
		if err := r.run(ctx); err != nil {
			fmt.Fprintf(p.stderr, "mig seq-raise: %v\n", err)
			return exitFail
		}
		return exitOK
	}
}

// raiser raises every section's max_seq to at least a target.
type raiser struct {
	etcd                  *opsEtcd
	out                   io.Writer
	prefix                string
	to                    uint64 // 0: the highest max_seq plus one step
	dryRun, force         bool
	sectionSize, uidLimit uint64 // the layout when none is recorded
	// beforeWrite, if not nil, is called before each write of a group:
	// tests change the group there, as a live node would.
	beforeWrite func(key string)
}

// raisedGroup is a group's max_seqs as read, with the key's ModRevision
// (0: absent).
type raisedGroup struct {
	vals []uint64
	rev  int64
}

func (r *raiser) run(ctx context.Context) error {
	seqPrefix := r.prefix + "/seq/"
	resp, err := r.etcd.get(ctx, seqPrefix, true)
	if err != nil {
		return err
	}
	var cfg *seqConfigRecord
	var nodes []string
	groupVals := map[int]*mvccKV{}
	born := map[int]bool{}
	releases := 0
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		switch {
		case key == seqPrefix+"config":
			cfg = &seqConfigRecord{}
			if err := json.Unmarshal(kv.Value, cfg); err != nil {
				return fmt.Errorf("%s is unreadable (%v): refusing to guess the layout", key, err)
			}
		case strings.HasPrefix(key, seqPrefix+"nodes/"):
			nodes = append(nodes, strings.TrimPrefix(key, seqPrefix+"nodes/"))
		case strings.HasPrefix(key, seqPrefix+"groups/"):
			g, ok := parseGroupKey(r.prefix, key)
			if !ok {
				return fmt.Errorf("%s is not a group key (%sgroups/ and 8 hex digits): refusing to raise beside it", key, seqPrefix)
			}
			groupVals[g] = kv
		case strings.HasPrefix(key, seqPrefix+"released/"):
			releases++
		case strings.HasPrefix(key, seqPrefix+"born/"):
			if g, ok := parseGroupKey(r.prefix, seqPrefix+"groups/"+strings.TrimPrefix(key, seqPrefix+"born/")); ok {
				born[g] = true
			}
		}
	}
	// A group written once (its born key) whose max_seq key is gone was
	// deleted: its highest value is unknown, so only an operator who
	// knows a bound may say how far to raise it.
	var lost []int
	for g := range born {
		if _, ok := groupVals[g]; !ok {
			lost = append(lost, g)
		}
	}
	if len(lost) > 0 && r.to == 0 {
		slices.Sort(lost)
		return fmt.Errorf("the max_seq keys of %d group(s) were written and then deleted (%sborn/ records them, %sgroups/ no longer has them: groups %v): "+
			"their highest value is unknown, so no target can be computed from the others; give --to N with N above any sequence they can have handed out",
			len(lost), seqPrefix, seqPrefix, lost)
	}

	lay, step, err := r.layout(cfg)
	if err != nil {
		return err
	}
	if len(nodes) > 0 && !r.force && !r.dryRun {
		return fmt.Errorf("%d sequence node(s) registered under %snodes/ (%s): stop every mig serve of the deployment first, or give --force. "+
			"A live node may be extending a group's max_seq right now; each write here compares the group's revision, so neither write can undo the other "+
			"(the node's fails and it re-reads the raised value), but with the nodes stopped no value below the target is handed out after this command returns",
			len(nodes), seqPrefix, strings.Join(nodes, ", "))
	}

	groups := make([]raisedGroup, lay.groups)
	var highest uint64
	for _, g := range slices.Sorted(maps.Keys(groupVals)) {
		kv := groupVals[g]
		if g >= lay.groups {
			return fmt.Errorf("%s: group %d is beyond the layout's %d groups (section size %d, uid limit %d): refusing to raise a layout that does not match the data",
				kv.Key, g, lay.groups, lay.sectionSize, lay.uidLimit)
		}
		vals, err := decodeMaxSeqs(kv.Value, lay.sectionsIn(g))
		if err != nil {
			return fmt.Errorf("%s: %v: refusing to guess its max_seqs", kv.Key, err)
		}
		groups[g] = raisedGroup{vals: vals, rev: kv.ModRevision}
		highest = max(highest, slices.Max(vals))
	}

	target := r.to
	how := "given by --to"
	if target == 0 {
		if len(groupVals) == 0 {
			fmt.Fprintf(r.out, "no group of sections is written under %sgroups/: every uid is at 0 and there is nothing to raise above (give --to to raise anyway)\n", seqPrefix)
			return nil
		}
		if highest > seqfacade.MaxSeq-step {
			return fmt.Errorf("the highest max_seq, %d, plus one step of %d is past the highest sequence there is, %d", highest, step, uint64(seqfacade.MaxSeq))
		}
		target = highest + step
		how = fmt.Sprintf("the highest max_seq, %d, plus one step of %d", highest, step)
	}
	fmt.Fprintf(r.out, "target max_seq %d (%s); %d groups of %d sections (section size %d, uid limit %d); %d groups written, highest max_seq %d\n",
		target, how, lay.groups, lay.sections, lay.sectionSize, lay.uidLimit, len(groupVals), highest)
	if len(nodes) > 0 {
		fmt.Fprintf(r.out, "warning: %d sequence node(s) registered (%s); each write compares the group's revision\n", len(nodes), strings.Join(nodes, ", "))
	}

	var raised, created, already, sections int
	for g := range groups {
		n, wasAbsent, err := r.raiseGroup(ctx, lay, g, groups[g], target)
		if err != nil {
			fmt.Fprintf(r.out, "stopped at group %d: %d groups raised (%d of them created), %d already at or above %d\n", g, raised, created, already, target)
			return err
		}
		switch {
		case n == 0:
			already++
		default:
			raised++
			sections += n
			if wasAbsent {
				created++
			}
		}
	}
	verb := "raised"
	if r.dryRun {
		verb = "would raise"
	}
	fmt.Fprintf(r.out, "%s %d sections in %d groups (%d groups created, never written before); %d groups already at or above %d\n",
		verb, sections, raised, created, already, target)
	// Every release marker goes, raised group or not: a marker that hands
	// a group off carries the max_seqs it was released at, and after a
	// restore from a backup those may be below values handed out since
	// (a node served from the marker and wrote nothing), above none of
	// which the group's key then is. Without a marker a group's next
	// owner waits its activation delay, once.
	switch {
	case r.dryRun:
		fmt.Fprintf(r.out, "would delete %d release marker(s) under %sreleased/\n", releases, seqPrefix)
	default:
		var deleted int64
		err := r.etcd.call(ctx, "deleting "+seqPrefix+"released/", func(ctx context.Context) error {
			resp, err := r.etcd.cli.Delete(ctx, seqPrefix+"released/", clientv3.WithPrefix())
			if err == nil {
				deleted = resp.Deleted
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("every group is raised, but the release markers under %sreleased/ could not be deleted (run this command again): %w", seqPrefix, err)
		}
		fmt.Fprintf(r.out, "deleted %d release marker(s) under %sreleased/ (each group's next owner waits its activation delay once)\n", deleted, seqPrefix)
	}
	if !r.dryRun {
		fmt.Fprintf(r.out, "every section's max_seq is now at least %d: every uid's next sequence is above %d\n", target, target)
	}
	return nil
}

// layout returns the layout of the recorded configuration, or, with none,
// the one of --section-size and --uid-limit, and the step.
func (r *raiser) layout(cfg *seqConfigRecord) (seqLayout, uint64, error) {
	if cfg == nil {
		if r.sectionSize == 0 || r.uidLimit == 0 {
			return seqLayout{}, 0, fmt.Errorf("no configuration at %s/seq/config: no sequence node has started here (check --etcd, --seq-etcd, --prefix), "+
				"or <prefix>/seq/ was deleted; to write the groups of a layout before any node records it, give --section-size and --uid-limit, and --to", r.prefix)
		}
		if r.to == 0 {
			return seqLayout{}, 0, errors.New("no configuration is recorded, so there is no step to raise by: give --to")
		}
		l, err := newSeqLayout(r.sectionSize, r.uidLimit, seqfacade.DefaultGroupSize)
		if err != nil {
			return seqLayout{}, 0, fmt.Errorf("--section-size, --uid-limit: %w", err)
		}
		return l, 0, nil
	}
	if cfg.Format != seqGroupFormat {
		return seqLayout{}, 0, fmt.Errorf("%s/seq/config records value format %d; this mig knows only %d", r.prefix, cfg.Format, seqGroupFormat)
	}
	if (r.sectionSize != 0 && r.sectionSize != cfg.SectionSize) || (r.uidLimit != 0 && r.uidLimit != cfg.UIDLimit) {
		return seqLayout{}, 0, fmt.Errorf("--section-size %d, --uid-limit %d disagree with the configuration recorded at %s/seq/config (section size %d, uid limit %d), which is what the nodes use",
			r.sectionSize, r.uidLimit, r.prefix, cfg.SectionSize, cfg.UIDLimit)
	}
	l, err := newSeqLayout(cfg.SectionSize, cfg.UIDLimit, cfg.GroupSize)
	if err != nil {
		return seqLayout{}, 0, fmt.Errorf("%s/seq/config: %w", r.prefix, err)
	}
	return l, cfg.Step, nil
}

// raiseGroup raises group g, as read in cur, to target. It returns the
// number of sections it raised (0: none was below target) and whether
// the key was absent. A write that finds the key changed reads it again
// and raises from there; a write whose outcome is unknown (a timeout) is
// followed by a read, and the raise is computed again from what it finds:
// raising is idempotent.
//
// HAZARD: every value written is the larger of what the key held and the
// target, and the write is conditional on the key's ModRevision being the
// one those values were read at. Dropping the compare (or writing the
// target alone) could lower a section that a live node extended in
// between, and its uids would be handed values already handed out.
func (r *raiser) raiseGroup(ctx context.Context, lay seqLayout, g int, cur raisedGroup, target uint64) (int, bool, error) {
	key := groupKey(r.prefix, g)
	n := lay.sectionsIn(g)
	if cur.vals == nil {
		cur.vals = make([]uint64, n)
	}
	absent := cur.rev == 0
	first := -1 // the sections below target as first read: what this raises
	for attempt := 1; ; attempt++ {
		next := slices.Clone(cur.vals)
		low := 0
		for i := range next {
			if next[i] < target {
				next[i] = target
				low++
			}
		}
		if first < 0 {
			first = low
		}
		if low == 0 || r.dryRun {
			return first, absent, nil
		}
		if r.beforeWrite != nil {
			r.beforeWrite(key)
		}
		var tr *clientv3.TxnResponse
		err := r.etcd.call(ctx, "raising "+key, func(ctx context.Context) (err error) {
			// The group's born key too, as the nodes' first write makes it:
			// a group key deleted later is then refused, not read as zeros.
			born := seqPrefixOf(key) + "born/" + strings.TrimPrefix(key, seqPrefixOf(key)+"groups/")
			tr, err = r.etcd.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.rev)).
				Then(clientv3.OpPut(key, string(encodeMaxSeqs(next))), clientv3.OpPut(born, "1")).
				Else(clientv3.OpGet(key)).
				Commit()
			return err
		})
		if err == nil && tr.Succeeded {
			return first, absent, nil
		}
		if attempt == seqRaiseAttempts {
			if err == nil {
				err = errors.New("the group kept changing under this command")
			}
			return 0, absent, fmt.Errorf("%s: gave up after %d attempts: %w", key, attempt, err)
		}
		var kvs []*mvccKV
		if err == nil {
			kvs = tr.Responses[0].GetResponseRange().Kvs
		} else {
			// Unknown outcome: read what is there now.
			resp, rerr := r.etcd.get(ctx, key, false)
			if rerr != nil {
				return 0, absent, fmt.Errorf("%w; reading it again: %w", err, rerr)
			}
			kvs = resp.Kvs
		}
		seen := cur.vals
		cur = raisedGroup{vals: make([]uint64, n)}
		if len(kvs) > 0 {
			vals, derr := decodeMaxSeqs(kvs[0].Value, n)
			if derr != nil {
				return 0, absent, fmt.Errorf("%s changed to a value that is unreadable (%v): refusing to guess", key, derr)
			}
			cur = raisedGroup{vals: vals, rev: kvs[0].ModRevision}
		}
		// HAZARD: never below a value read before, even if the key was
		// deleted meanwhile (read as absent).
		for i := range cur.vals {
			cur.vals[i] = max(cur.vals[i], seen[i])
		}
	}
}

// seqPrefixOf returns the "<prefix>/seq/" part of a group key.
func seqPrefixOf(groupKey string) string {
	i := strings.LastIndex(groupKey, "groups/")
	if i < 0 {
		return ""
	}
	return groupKey[:i]
}
