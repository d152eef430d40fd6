package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
)

// readGroups returns every group key under /mig/seq/groups/ decoded for
// a layout of the default group size, by group.
func readGroups(t *testing.T, cli *clientv3.Client, lay seqLayout) map[int][]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/mig/seq/groups/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][]uint64{}
	for _, kv := range resp.Kvs {
		g, ok := parseGroupKey("/mig", string(kv.Key))
		if !ok {
			t.Fatalf("stray key %s", kv.Key)
		}
		vals, err := decodeMaxSeqs(kv.Value, lay.sectionsIn(g))
		if err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		out[g] = vals
	}
	return out
}

// checkAtLeast fails unless every group of lay is written with every
// section at or above target.
func checkAtLeast(t *testing.T, groups map[int][]uint64, lay seqLayout, target uint64) {
	t.Helper()
	if len(groups) != lay.groups {
		t.Fatalf("%d groups written, want every one of %d", len(groups), lay.groups)
	}
	for g, vals := range groups {
		for i, v := range vals {
			if v < target {
				t.Fatalf("group %d section %d: max_seq %d, below %d", g, i, v, target)
			}
		}
	}
}

// TestSeqRaise: with a real mig serve's max_seqs in a real etcd,
// seq-raise refuses while the node is registered, raises every section
// above the highest once it stopped, and a restarted node continues above
// the target for a uid it served and for one of a group never written.
func TestSeqRaise(t *testing.T) {
	srv := etcdtest.Start(t)
	etcd := strings.Join(srv.Endpoints(), ",")
	cli := etcdtest.Client(t, srv.Endpoints()...)
	lay, err := newSeqLayout(100_000, 1<<32, 128)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--etcd", etcd, "--seq-step", "100"}, fastFlags...)
	s := startServe(t, args...)
	c := newRPCClient(t, []string{s.url()})
	uids := []uint64{1, 150_000, 20_000_000}
	waitFor(t, 10*time.Second, "sequences served", func() bool {
		_, err := c.NextSeq(t.Context(), 1)
		return err == nil
	})
	last := map[uint64]uint64{}
	for range 250 {
		vs, err := c.NextSeqs(t.Context(), uids)
		if err != nil {
			t.Fatal(err)
		}
		for i, u := range uids {
			last[u] = vs[i]
		}
	}

	// Refused while the node is registered, before it plans anything (the
	// node itself keeps extending groups, so their values say nothing).
	stdout, stderr, status := runMig(t, nil, "", "seq-raise", "--etcd", etcd)
	if status != exitFail || stdout != "" || !strings.Contains(stderr, "1 sequence node(s) registered") || !strings.Contains(stderr, "--force") ||
		!strings.Contains(stderr, "compares the group's revision") {
		t.Fatalf("seq-raise with a live node: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// With the node stopped, nothing else writes: a dry run writes nothing.
	before := readGroups(t, cli, lay)
	stdout, stderr, status = runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--dry-run")
	if status != exitOK || !strings.Contains(stdout, "would raise 42950 sections in 336 groups") {
		t.Fatalf("--dry-run: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	if after := readGroups(t, cli, lay); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("--dry-run wrote")
	}
	var highest uint64
	for _, vals := range before {
		for _, v := range vals {
			highest = max(highest, v)
		}
	}
	if highest <= last[1] {
		t.Fatalf("highest max_seq %d is not above the values handed out (%v)", highest, last)
	}

	stdout, stderr, status = runMig(t, nil, "", "seq-raise", "--etcd", etcd)
	t.Logf("mig seq-raise:\n%s", stdout)
	target := highest + 100
	if status != exitOK || stderr != "" ||
		!strings.Contains(stdout, fmt.Sprintf("target max_seq %d (the highest max_seq, %d, plus one step of 100)", target, highest)) ||
		!regexp.MustCompile(fmt.Sprintf(`raised 42950 sections in 336 groups \(\d+ groups created, never written before\); 0 groups already at or above %d`, target)).MatchString(stdout) {
		t.Fatalf("seq-raise: status %d, stdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	checkAtLeast(t, readGroups(t, cli, lay), lay, target)

	// Again with --to at the same target: nothing left to raise.
	stdout, _, status = runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--to", strconv.FormatUint(target, 10))
	if status != exitOK || !strings.Contains(stdout, "raised 0 sections in 0 groups (0 groups created, never written before); 336 groups already") {
		t.Fatalf("second seq-raise: status %d, stdout:\n%s", status, stdout)
	}

	s2 := startServe(t, args...)
	c2 := newRPCClient(t, []string{s2.url()})
	waitFor(t, 10*time.Second, "sequences served after the raise", func() bool {
		_, err := c2.CurSeq(t.Context(), 1)
		return err == nil
	})
	for _, u := range append(uids, 4_000_000_000) {
		v, err := c2.NextSeq(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		if v <= target {
			t.Errorf("uid %d after the raise: %d, not above %d", u, v, target)
		}
	}
}

// TestSeqRaiseForce: with --force the node keeps running; its next
// extension finds the group raised under it, re-reads it, and its values
// go on above the target, never backwards. One group of ten sections:
// the raise is one write, and the node's next extension meets it.
func TestSeqRaiseForce(t *testing.T) {
	etcd := etcdEndpoint(t)
	s := startServe(t, append([]string{"--etcd", etcd, "--seq-step", "50", "--uid-limit", "1000000"}, fastFlags...)...)
	c := newRPCClient(t, []string{s.url()})
	var last uint64
	waitFor(t, 10*time.Second, "sequences served", func() bool {
		v, err := c.NextSeq(t.Context(), 5)
		last = max(last, v)
		return err == nil
	})
	const target = 1_000_000
	stdout, stderr, status := runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--to", strconv.Itoa(target), "--force")
	if status != exitOK || !strings.Contains(stdout, "warning: 1 sequence node(s) registered") {
		t.Fatalf("--force: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	waitFor(t, 20*time.Second, "values above the target", func() bool {
		v, err := c.NextSeq(t.Context(), 5)
		if err != nil {
			return false // unavailable while the group is read again
		}
		if v <= last {
			t.Fatalf("uid 5: %d after %d", v, last)
		}
		last = v
		return v > target
	})
}

// TestSeqRaiseConcurrentWrite: a group that changes between the read and
// the write (a live node extending it) is read again and raised from its
// new values; the other writer's values are never lowered.
func TestSeqRaiseConcurrentWrite(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// 3 groups: 128 + 128 + 4 sections of 10 uids.
	if _, err := cli.Put(ctx, "/mig/seq/config", `{"section_size":10,"group_size":128,"uid_limit":2600,"step":10,"format":1}`); err != nil {
		t.Fatal(err)
	}
	lay, _ := newSeqLayout(10, 2600, 128)
	g0 := make([]uint64, 128)
	g0[3] = 500
	if _, err := cli.Put(ctx, groupKey("/mig", 0), string(encodeMaxSeqs(g0))); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e, err := dialOps(&opsFlags{timeout: 5 * time.Second}, srv.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	interfered := 0
	r := &raiser{etcd: e, out: &out, prefix: "/mig", beforeWrite: func(key string) {
		if key != groupKey("/mig", 0) || interfered > 0 {
			return
		}
		interfered++
		// The node extends section 3 to 2000 and section 4 to 600.
		v := make([]uint64, 128)
		v[3], v[4] = 2000, 600
		if _, err := cli.Put(ctx, key, string(encodeMaxSeqs(v))); err != nil {
			t.Error(err)
		}
	}}
	if err := r.run(ctx); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if interfered != 1 || !strings.Contains(out.String(), "target max_seq 510 (the highest max_seq, 500, plus one step of 10)") {
		t.Fatalf("interfered %d times; output:\n%s", interfered, out.String())
	}
	groups := readGroups(t, cli, lay)
	checkAtLeast(t, groups, lay, 510)
	if groups[0][3] != 2000 || groups[0][4] != 600 || groups[0][5] != 510 || len(groups[2]) != 4 {
		t.Errorf("group 0 after the raise: %v; group 2: %v", groups[0][:6], groups[2])
	}

	// A value nobody can read stops the raise before anything is written.
	if _, err := cli.Put(ctx, groupKey("/mig", 1), "\x02garbage"); err != nil {
		t.Fatal(err)
	}
	_, stderr, status := runMig(t, nil, "", "seq-raise", "--etcd", srv.Endpoints()[0], "--to", "100000")
	if status != exitFail || !strings.Contains(stderr, "/mig/seq/groups/00000001: format 2") || !strings.Contains(stderr, "refusing to guess") {
		t.Errorf("corrupt group: status %d, stderr %q", status, stderr)
	}
	resp, err := cli.Get(ctx, groupKey("/mig", 0))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeMaxSeqs(resp.Kvs[0].Value, 128); err != nil || got[5] != 510 {
		t.Errorf("group 0 written despite the refusal: %v, %v", got[:6], err)
	}
}

// TestSeqRaiseNewLayout: the safe way to change the sequences' layout.
// Delete <prefix>/seq/, write every group of the new layout at a target
// with seq-raise, and a node started with that layout continues above it.
func TestSeqRaiseNewLayout(t *testing.T) {
	srv := etcdtest.Start(t)
	etcd := strings.Join(srv.Endpoints(), ",")
	cli := etcdtest.Client(t, srv.Endpoints()...)

	_, stderr, status := runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--to", "5000")
	if status != exitFail || !strings.Contains(stderr, "no configuration at /mig/seq/config") || !strings.Contains(stderr, "--section-size") {
		t.Fatalf("no config, no layout: status %d, stderr %q", status, stderr)
	}
	_, stderr, status = runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--section-size", "1000", "--uid-limit", "1000000")
	if status != exitFail || !strings.Contains(stderr, "give --to") {
		t.Fatalf("no config, no --to: status %d, stderr %q", status, stderr)
	}
	stdout, stderr, status := runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--section-size", "1000", "--uid-limit", "1000000", "--to", "5000")
	if status != exitOK || !strings.Contains(stdout, "raised 1000 sections in 8 groups (8 groups created") {
		t.Fatalf("new layout: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	lay, _ := newSeqLayout(1000, 1_000_000, 128)
	checkAtLeast(t, readGroups(t, cli, lay), lay, 5000)

	args := append([]string{"--etcd", etcd, "--section-size", "1000", "--uid-limit", "1000000"}, fastFlags...)
	s := startServe(t, args...)
	c := newRPCClient(t, []string{s.url()})
	waitFor(t, 10*time.Second, "sequences served", func() bool {
		_, err := c.CurSeq(t.Context(), 1)
		return err == nil
	})
	for _, u := range []uint64{1, 500_000, 999_999} {
		if v, err := c.NextSeq(t.Context(), u); err != nil || v <= 5000 {
			t.Errorf("uid %d: %d, %v; want above 5000", u, v, err)
		}
	}
	// With the configuration recorded, a layout flag that disagrees is refused.
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	_, stderr, status = runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--section-size", "100")
	if status != exitFail || !strings.Contains(stderr, "disagree with the configuration recorded") {
		t.Errorf("disagreeing layout: status %d, stderr %q", status, stderr)
	}
}

// TestSeqRaiseDeletedGroup: a group written once (its born key) whose
// max_seq key was deleted has an unknown highest value: seq-raise refuses
// to compute a target from the others, and with --to restores the group
// at that target, never below.
func TestSeqRaiseDeletedGroup(t *testing.T) {
	srv := etcdtest.Start(t)
	etcd := srv.Endpoints()[0]
	cli := etcdtest.Client(t, srv.Endpoints()...)
	lay, err := newSeqLayout(100_000, 1<<32, 128)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// A layout, group 0 high (5000) and group 1 low (100), both born.
	if _, err := cli.Put(ctx, "/mig/seq/config", `{"section_size":100000,"group_size":128,"uid_limit":4294967296,"step":100,"format":1}`); err != nil {
		t.Fatal(err)
	}
	for g, v := range map[int]uint64{0: 5000, 1: 100} {
		vals := make([]uint64, lay.sectionsIn(g))
		vals[3] = v
		if _, err := cli.Put(ctx, groupKey("/mig", g), string(encodeMaxSeqs(vals))); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, fmt.Sprintf("/mig/seq/born/%08x", g), "1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, groupKey("/mig", 0)); err != nil {
		t.Fatal(err)
	}
	_, stderr, status := runMig(t, nil, "", "seq-raise", "--etcd", etcd)
	if status != exitFail || !strings.Contains(stderr, "deleted") || !strings.Contains(stderr, "--to") {
		t.Fatalf("seq-raise over a deleted group: status %d, stderr %q", status, stderr)
	}
	if got := readGroups(t, cli, lay); len(got[0]) != 0 || got[1][3] != 100 {
		t.Fatalf("the refusal wrote: %v", got)
	}
	if _, stderr, status := runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--to", "9000"); status != exitOK {
		t.Fatalf("seq-raise --to 9000: status %d, %s", status, stderr)
	}
	checkAtLeast(t, readGroups(t, cli, lay), lay, 9000)
}

// TestSeqRaiseAfterRestore follows README's procedure after restoring
// etcd from a backup taken between a clean stop (which hands the groups
// off, their state in the release markers) and the next node's values,
// served from those markers without a write: seq-raise --to above those
// values finds the group already there and writes nothing to it, yet the
// next node must not serve from the restored marker again.
func TestSeqRaiseAfterRestore(t *testing.T) {
	srv := etcdtest.Start(t)
	etcd := strings.Join(srv.Endpoints(), ",")
	cli := etcdtest.Client(t, srv.Endpoints()...)
	args := append([]string{"--etcd", etcd, "--seq-step", "100", "--uid-limit", "1000000"}, fastFlags...)
	const u = 5
	next := func(s *testServer) uint64 {
		c := newRPCClient(t, []string{s.url()})
		var v uint64
		waitFor(t, 10*time.Second, "a value", func() bool {
			var err error
			v, err = c.NextSeq(t.Context(), u)
			return err == nil
		})
		return v
	}
	s1 := startServe(t, args...)
	for range 3 {
		next(s1)
	}
	if err := s1.stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	backup, err := cli.Get(ctx, "/mig/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	s2 := startServe(t, args...)
	var highest uint64
	for range 3 {
		highest = next(s2)
	}
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}
	// The restore: every key as it was, in one transaction (the group and
	// its release keep one revision, as a snapshot keeps them).
	if _, err := cli.Delete(ctx, "/mig/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	var ops []clientv3.Op
	for _, kv := range backup.Kvs {
		if kv.Lease == 0 {
			ops = append(ops, clientv3.OpPut(string(kv.Key), string(kv.Value)))
		}
	}
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, status := runMig(t, nil, "", "seq-raise", "--etcd", etcd, "--to", strconv.FormatUint(highest, 10))
	if status != exitOK || !strings.Contains(stdout, "deleted 1 release marker(s) under /mig/seq/released/") {
		t.Fatalf("seq-raise --to %d: status %d\n%s%s", highest, status, stdout, stderr)
	}
	s3 := startServe(t, args...)
	if v := next(s3); v <= highest {
		t.Fatalf("uid %d after the restore and seq-raise --to %d: %d, a value handed out again", u, highest, v)
	}
}
