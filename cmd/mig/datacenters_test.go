package main

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc/migclient"
)

// TestClientAcrossDatacenters runs `mig serve` in two datacenters, two
// servers each, each datacenter with its own etcd for its worker IDs and
// one etcd for the sequences of both (--seq-etcd), routed over all four
// nodes, homes spread over the two datacenters. A migclient.Client of
// dc1 with dc2 as its remote datacenter takes its IDs from dc1, reaches
// each uid's owner directly, dc2's nodes included, once it has the table,
// and takes its IDs from dc2 when dc1's servers are gone.
func TestClientAcrossDatacenters(t *testing.T) {
	seqEtcd := etcdEndpoint(t)
	start := func(dc, workers, others string) []*testServer {
		etcd := etcdEndpoint(t)
		var ss []*testServer
		for range 2 {
			ss = append(ss, startServe(t, append([]string{"--etcd", etcd, "--seq-etcd", seqEtcd, "--dc", dc, "--workers", workers, "--other-dcs", others,
				"--seq-rebalance-interval", "200ms", "--seq-max-moves", "400"}, fastFlags...)...))
		}
		return ss
	}
	dc1 := start("dc1", "0-1", "dc2=2-3")
	dc2 := start("dc2", "2-3", "dc1=0-1")
	c := newRPCClient(t, []string{dc1[0].url(), dc1[1].url()}, migclient.WithRemote("dc2", dc2[0].url(), dc2[1].url()))

	for range 20 {
		_, o, err := c.NextIDs(t.Context(), 3)
		if err != nil {
			t.Fatal(err)
		}
		if o.Datacenter != "dc1" {
			t.Fatalf("IDs from %s (%s) while dc1 serves", o.Datacenter, o.Endpoint)
		}
	}

	// One uid in every 16th group of the 336: the homes split the groups
	// between the datacenters, so some are on dc2's nodes.
	var uids []uint64
	for g := uint64(0); g < 336; g += 16 {
		uids = append(uids, 1+g*100_000*128)
	}
	all := append(append([]*testServer{}, dc1...), dc2...)
	ownerOf := func(uid uint64) *testServer {
		for _, s := range all {
			if code, _ := postJSONRaw(t, s.url()+"/twirp/mig.v1.SeqService/CurSeq", fmt.Sprintf(`{"uid":"%d","want_routing":true}`, uid)); code == 200 {
				return s
			}
		}
		return nil
	}
	// The arbiter moves up to --seq-max-moves groups a round: the table
	// settles within a few rounds of the last node's start.
	version := func() string {
		_, body := get(t, all[0].url()+"/metrics")
		return regexp.MustCompile(`(?m)^mig_seq_routing_version (\S+)$`).FindString(body)
	}
	waitFor(t, 30*time.Second, "the routing table settled", func() bool {
		v := version()
		<-clock.NewReal().After(time.Second)
		return v != "" && v == version()
	})
	var uid uint64
	var owner *testServer
	waitFor(t, 30*time.Second, "a uid served by a node of dc2", func() bool {
		for _, u := range uids {
			if o := ownerOf(u); o == dc2[0] || o == dc2[1] {
				uid, owner = u, o
				return true
			}
		}
		return false
	})
	// The first call may go to a dc1 node and be redirected (the client
	// has no table yet); after that, every call goes to the owner, and
	// the others see none. The arbiter may still be moving groups: a
	// round in which the uid moved is done again.
	waitFor(t, 10*time.Second, "the uid advanced through the client", func() bool {
		_, err := c.NextSeq(t.Context(), uid)
		return err == nil
	})
	served := func(s *testServer, code string) int64 { return requestsCounted(t, s, "NextSeq", code) }
	others := func() (n int64) {
		for _, s := range all {
			if s != owner {
				n += served(s, "ok") + served(s, "failed_precondition")
			}
		}
		return n
	}
	last := uint64(0)
	for round := 0; ; round++ {
		if round == 5 {
			t.Fatalf("uid %d moved during each of 5 rounds", uid)
		}
		ownerBefore, othersBefore := served(owner, "ok"), others()
		for range 20 {
			v, err := c.NextSeq(t.Context(), uid)
			if err != nil {
				t.Fatal(err)
			}
			if v <= last {
				t.Fatalf("uid %d: %d after %d", uid, v, last)
			}
			last = v
		}
		if ownerOf(uid) != owner {
			owner = ownerOf(uid)
			continue
		}
		if got, more := served(owner, "ok")-ownerBefore, others()-othersBefore; got != 20 || more != 0 {
			for _, s := range all {
				_, body := get(t, s.url()+"/metrics")
				t.Logf("%s:\n%s", s.url(), regexp.MustCompile(`(?m)^mig_rpc_requests_total.*$`).FindAllString(body, -1))
			}
			t.Fatalf("the owner %s answered %d of 20 calls, the other nodes %d", owner.url(), got, more)
		}
		break
	}
	if owner != dc2[0] && owner != dc2[1] {
		t.Logf("the uid moved to dc1 meanwhile; its owner was reached directly all the same")
	}

	// dc1 gone: IDs from dc2.
	for _, s := range dc1 {
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		_, o, err := c.NextIDs(t.Context(), 3)
		if err != nil {
			t.Fatal(err)
		}
		if o.Datacenter != "dc2" {
			t.Fatalf("IDs from %s (%s) with dc1 stopped", o.Datacenter, o.Endpoint)
		}
	}
}

// requestsCounted returns s's count of method's answers with code, from
// its /metrics.
func requestsCounted(t testing.TB, s *testServer, method, code string) int64 {
	t.Helper()
	_, body := get(t, s.url()+"/metrics")
	re := regexp.MustCompile(`(?m)^mig_rpc_requests_total\{code="` + code + `",method="` + method + `",service="[^"]*"\} (\d+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
