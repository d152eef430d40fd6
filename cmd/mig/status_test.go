package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
)

// TestStatus runs `mig status` against a live deployment: two mig serve
// in-process on one embedded etcd, sequences handed out, a cluster record
// and an unreadable key planted beside them.
func TestStatus(t *testing.T) {
	srv := etcdtest.Start(t)
	etcd := strings.Join(srv.Endpoints(), ",")
	cli := etcdtest.Client(t, srv.Endpoints()...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// The record a parallel change has mig serve write; shown when present.
	if _, err := cli.Put(ctx, "/mig/cluster", `{"datacenter":"tokyo"}`); err != nil {
		t.Fatal(err)
	}

	common := append([]string{"--etcd", etcd, "--dc", "tokyo", "--workers", "0-15", "--other-dcs", "osaka=16-31", "--seq-etcd", etcd, "--seq-step", "100",
		"--seq-rebalance-interval", "500ms", "--seq-max-moves", "400"}, fastFlags...)
	a := startServe(t, append([]string{"--seq-node", "node-a"}, common...)...)
	b := startServe(t, append([]string{"--seq-node", "node-b"}, common...)...)
	c := newRPCClient(t, []string{a.url(), b.url()})
	waitFor(t, 20*time.Second, "sequences served", func() bool {
		_, err := c.NextSeq(t.Context(), 7)
		return err == nil
	})
	for range 150 { // past a step of 100: max_seq 200 for uid 7's section
		if _, err := c.NextSeq(t.Context(), 7); err != nil {
			t.Fatal(err)
		}
	}
	// Both nodes own groups once the arbiter has balanced them by weight.
	waitFor(t, 30*time.Second, "groups on both nodes", func() bool {
		stdout, _, _ := runMig(t, nil, "", "status", "--etcd", etcd, "--json")
		var d deployment
		return json.Unmarshal([]byte(stdout), &d) == nil && d.Seq.Routing != nil && len(d.Seq.Routing.Owners) == 2
	})

	stdout, stderr, status := runMig(t, nil, "", "status", "--etcd", etcd, "--timeout", "5s")
	if status != exitOK || stderr != "" {
		t.Fatalf("status %d, stderr:\n%s", status, stderr)
	}
	t.Logf("mig status:\n%s", stdout)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ID layout +epoch 2025-01-01T00:00:00Z, ticks of 10ms, 39/6/18 bits`),
		regexp.MustCompile(`(?m)^datacenter +tokyo \(recorded at /mig/cluster\)`),
		regexp.MustCompile(`(?m)^  tokyo +0-15 +this cluster's`),
		regexp.MustCompile(`(?m)^  osaka +16-31`),
		regexp.MustCompile(`(?m)^worker IDs +2 held`),
		regexp.MustCompile(`(?m)^  0 +held +tokyo +\S+ ` + regexp.QuoteMeta(a.addr) + ` +[0-9a-f]+ +\d+s +\S+Z +\+\d+\.\ds$`),
		regexp.MustCompile(`(?m)^  1 +held +tokyo +\S+ ` + regexp.QuoteMeta(b.addr) + ` +[0-9a-f]+ +\d+s +\S+Z +\+\d+\.\ds$`),
		regexp.MustCompile(`(?m)^sequences +sections of 100000 uids, 128 sections a group, uids below 4294967296: 336 groups; step 100; value format 1$`),
		regexp.MustCompile(`(?m)^max_seq +\d+ of 336 groups written; highest \d+ \(section 0, group 0\)$`),
		regexp.MustCompile(`(?m)^nodes +2 registered$`),
		regexp.MustCompile(`(?m)^  node-a +` + regexp.QuoteMeta(a.addr) + ` +tokyo +1 +no +\d+s +`),
		regexp.MustCompile(`(?m)^  node-b +` + regexp.QuoteMeta(b.addr) + ` +tokyo +1 +no +\d+s +`),
		regexp.MustCompile(`(?m)^arbiter +node-[ab]$`),
		regexp.MustCompile(`(?m)^routing +version \d+, 336 groups$`),
		regexp.MustCompile(`(?m)^  node-[ab] +\d+ +[0-9,-]+$`),
	} {
		if !want.MatchString(stdout) {
			t.Errorf("output does not match %s", want)
		}
	}
	if strings.Contains(stdout, "Problems") {
		t.Errorf("problems reported on a healthy deployment")
	}

	// JSON: one document, the same facts, 64-bit numbers as strings.
	stdout, stderr, status = runMig(t, nil, "", "status", "--etcd", etcd, "--json")
	if status != exitOK || stderr != "" {
		t.Fatalf("--json: status %d, stderr:\n%s", status, stderr)
	}
	var d deployment
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatalf("--json output is not one JSON document: %v\n%s", err, stdout)
	}
	if d.Datacenter != "tokyo" || len(d.Workers) != 2 || !d.Workers[0].Held || d.Workers[0].TTLLeft == nil || *d.Workers[0].TTLLeft <= 0 ||
		d.Workers[0].AheadSeconds == nil || *d.Workers[0].AheadSeconds <= 0 {
		t.Errorf("--json workers: %+v", d.Workers)
	}
	if d.Seq.Config == nil || d.Seq.Config.Groups != 336 || d.Seq.MaxSeq == nil || d.Seq.MaxSeq.Highest < 200 ||
		len(d.Seq.Nodes) != 2 || d.Seq.Routing == nil || d.Seq.Routing.Version == 0 {
		t.Errorf("--json sequences: %+v", d.Seq)
	}
	sum := 0
	for _, o := range d.Seq.Routing.Owners {
		sum += o.Groups
	}
	if sum != 336 {
		t.Errorf("routing owners hold %d groups, want 336: %+v", sum, d.Seq.Routing.Owners)
	}
	for _, field := range []string{`"uid_limit": "4294967296"`, `"highest": "` + strconv.FormatUint(d.Seq.MaxSeq.Highest, 10) + `"`, `"revision": "`, `"watermark_tick": "`} {
		if !strings.Contains(stdout, field) {
			t.Errorf("--json lacks %s (64-bit numbers as strings):\n%s", field, stdout)
		}
	}

	// With the sequences in a cluster of their own, they are read there
	// only: this one holds none.
	other := etcdtest.Start(t).Endpoints()[0]
	stdout, stderr, status = runMig(t, nil, "", "status", "--etcd", etcd, "--seq-etcd", other)
	if status != exitOK || stderr != "" || !strings.Contains(stdout, "seq etcd      "+other+" (revision ") ||
		!strings.Contains(stdout, "no configuration at /mig/seq/config") || !strings.Contains(stdout, "nodes         none registered") ||
		!strings.Contains(stdout, "worker IDs    2 held") {
		t.Errorf("--seq-etcd %s: status %d, stderr %q, stdout:\n%s", other, status, stderr, stdout)
	}

	// A value nobody can read is named, and the rest still shown.
	if _, err := cli.Put(ctx, "/mig/watermarks/40", "not json"); err != nil {
		t.Fatal(err)
	}
	stdout, _, status = runMig(t, nil, "", "status", "--etcd", etcd)
	if status != exitOK || !strings.Contains(stdout, "Problems") || !strings.Contains(stdout, "/mig/watermarks/40: unreadable") || !strings.Contains(stdout, "node-a") {
		t.Errorf("status %d with an unreadable watermark:\n%s", status, stdout)
	}
}

// TestStatusUnreachable: with no etcd listening, status fails within its
// timeout with an error that names the endpoints.
func TestStatusUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	for _, args := range [][]string{
		{"status", "--etcd", addr, "--timeout", "300ms"},
		{"status", "--etcd", etcdEndpoint(t), "--seq-etcd", addr, "--timeout", "300ms"},
		{"seq-raise", "--etcd", addr, "--timeout", "300ms"},
	} {
		stdout, stderr, status := runMig(t, nil, "", args...)
		if status != exitFail || stdout != "" || !strings.Contains(stderr, "etcd at "+addr+" did not answer within 300ms") {
			t.Errorf("%q: status %d, stdout %q, stderr %q", args, status, stdout, stderr)
		}
	}
}

func TestStatusFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "--etcd is required"},
		{[]string{"status", "--etcd", "127.0.0.1:1", "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"status", "--etcd", "127.0.0.1:1", "--prefix", "mig"}, `--prefix "mig"`},
		{[]string{"status", "--etcd", "127.0.0.1:1", "--etcd-cert", "x.pem"}, "--etcd-cert and --etcd-key go together"},
		{[]string{"status", "--etcd", "127.0.0.1:1", "extra"}, `unexpected argument "extra"`},
		{[]string{"seq-raise", "--etcd", "127.0.0.1:1", "--to", "5", "--above-max"}, "--to and --above-max"},
		{[]string{"seq-raise", "--etcd", "127.0.0.1:1", "--to", "0"}, "--to 0"},
		{[]string{"seq-raise", "--etcd", "127.0.0.1:1", "--to", fmt.Sprint(uint64(1) << 63)}, "above the highest sequence"},
	} {
		_, stderr, status := runMig(t, nil, "", tc.args...)
		if status != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: status %d, stderr %q; want %d and %q", tc.args, status, stderr, exitUsage, tc.want)
		}
	}
}
