package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeTwoDatacentersOneSeries is issue 13's check: tokyo and osaka,
// each with its own etcd for worker IDs and one etcd for the sequences of
// both (--seq-etcd); NextSeq for uid 42 asked as curl would, alternately
// of a tokyo server and an osaka one, gives one increasing series, not
// one per datacenter.
func TestServeTwoDatacentersOneSeries(t *testing.T) {
	seqEtcd := etcdEndpoint(t)
	tokyo := startServe(t, append([]string{"--etcd", etcdEndpoint(t), "--seq-etcd", seqEtcd,
		"--dc", "tokyo", "--workers", "0-15", "--other-dcs", "osaka=16-31"}, fastFlags...)...)
	osaka := startServe(t, append([]string{"--etcd", etcdEndpoint(t), "--seq-etcd", seqEtcd,
		"--dc", "osaka", "--workers", "16-31", "--other-dcs", "tokyo=0-15"}, fastFlags...)...)
	next := func(s *testServer) (uint64, int, string) {
		code, body := postJSONRaw(t, s.url()+"/twirp/mig.v1.SeqService/NextSeq", `{"uid":"42"}`)
		var ans struct{ Seq string }
		_ = json.Unmarshal([]byte(body), &ans)
		v, _ := strconv.ParseUint(ans.Seq, 10, 64)
		return v, code, body
	}
	waitFor(t, 20*time.Second, "both datacenters answering uid 42", func() bool {
		_, c1, _ := next(tokyo)
		_, c2, _ := next(osaka)
		return c1 == http.StatusOK && c2 == http.StatusOK
	})
	var last uint64
	var series []uint64
	for i := range 20 {
		s := tokyo
		if i%2 == 1 {
			s = osaka
		}
		v, code, body := next(s)
		if code != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, code, body)
		}
		if v <= last {
			t.Fatalf("uid 42: %d after %d (series %v): two counters for one uid", v, last, series)
		}
		last = v
		series = append(series, v)
	}
	t.Logf("uid 42 alternately from tokyo and osaka: %v", series)
	// IDs stay each datacenter's own.
	for s, dc := range map[*testServer]string{tokyo: "tokyo", osaka: "osaka"} {
		if code, m := postJSON(t, s.url(), `{"count":1}`); code != http.StatusOK || m["datacenter"] != dc {
			t.Fatalf("%s's NextIDs: %d %v", dc, code, m)
		}
	}
}

// TestServeDatacenterStores: without --seq-etcd, each datacenter's own
// etcd keeps the sequences of the groups --seq-homes gives it, and a
// call for a uid homed in the other is refused with failed_precondition
// naming that datacenter, never a value; a node that disagrees with the
// homes its store records does not start; --other-dcs without either
// --seq-etcd or --seq-homes, or with overlapping homes, is a usage error.
func TestServeDatacenterStores(t *testing.T) {
	homes := "tokyo=0-167,osaka=168-335"
	tokyoEtcd, osakaEtcd := etcdEndpoint(t), etcdEndpoint(t)
	tokyo := startServe(t, append([]string{"--etcd", tokyoEtcd, "--dc", "tokyo", "--workers", "0-15",
		"--other-dcs", "osaka=16-31", "--seq-homes", homes}, fastFlags...)...)
	osaka := startServe(t, append([]string{"--etcd", osakaEtcd, "--dc", "osaka", "--workers", "16-31",
		"--other-dcs", "tokyo=0-15", "--seq-homes", homes}, fastFlags...)...)
	tokyoUID, osakaUID := uint64(42), uint64(200*100_000*128+1) // groups 0 and 200
	call := func(s *testServer, uid uint64) (int, map[string]any) {
		code, body := postJSONRaw(t, s.url()+"/twirp/mig.v1.SeqService/NextSeq", fmt.Sprintf(`{"uid":"%d"}`, uid))
		var m map[string]any
		_ = json.Unmarshal([]byte(body), &m)
		return code, m
	}
	waitFor(t, 20*time.Second, "each datacenter serving its home uid", func() bool {
		c1, _ := call(tokyo, tokyoUID)
		c2, _ := call(osaka, osakaUID)
		return c1 == http.StatusOK && c2 == http.StatusOK
	})
	for _, tc := range []struct {
		s     *testServer
		uid   uint64
		owner string
	}{{osaka, tokyoUID, "tokyo"}, {tokyo, osakaUID, "osaka"}} {
		code, m := call(tc.s, tc.uid)
		meta, _ := m["meta"].(map[string]any)
		msg, _ := m["msg"].(string)
		if code != http.StatusPreconditionFailed || m["code"] != "failed_precondition" || meta["datacenter"] != tc.owner || !strings.Contains(msg, tc.owner) {
			t.Fatalf("uid %d at the other datacenter: %d %v; want failed_precondition naming %s", tc.uid, code, m, tc.owner)
		}
		if _, ok := m["seq"]; ok {
			t.Fatalf("a value for another store's uid: %v", m)
		}
	}

	// Another node on tokyo's store with other homes is refused.
	_, err := tryServe(t, append([]string{"--etcd", tokyoEtcd, "--dc", "tokyo", "--workers", "0-15",
		"--other-dcs", "osaka=16-31", "--seq-homes", "tokyo=0-200,osaka=201-335"}, fastFlags...)...)
	if err == nil || !strings.Contains(err.Error(), "homes") {
		t.Fatalf("a node with other homes on tokyo's store: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dc", "tokyo", "--other-dcs", "osaka=16-31"}, "--seq-etcd"},
		{[]string{"--dc", "tokyo", "--other-dcs", "osaka=16-31", "--seq-homes", "tokyo=0-200,osaka=150-335"}, "overlap"},
		{[]string{"--dc", "tokyo", "--other-dcs", "osaka=16-31", "--seq-homes", "tokyo=0-167,nagoya=168-335"}, "nagoya"},
		{[]string{"--dc", "tokyo", "--other-dcs", "osaka=16-31", "--seq-homes", "tokyo=0-167"}, "no home"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--etcd", "127.0.0.1:1", "--start-timeout", "1s"}, tc.args...)
		_, stderr, status := runMig(t, nil, "", args...)
		if status != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v: status %d, stderr %q; want %d naming %q", tc.args, status, stderr, exitUsage, tc.want)
		}
	}
}
