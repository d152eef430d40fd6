package main

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestServeDrainHandsOffDirectly: two real `mig serve` on one etcd. The
// one stopped (as SIGTERM does) drains: the other asks it for every
// release over SeqPeerService, on its HTTP port, and takes each (none
// waits for etcd, none fails to be asked), and every uid goes on above
// its values.
func TestServeDrainHandsOffDirectly(t *testing.T) {
	etcd := etcdEndpoint(t)
	flags := append([]string{"--etcd", etcd, "--seq-rebalance-interval", "200ms"}, fastFlags...)
	a, b := startServe(t, flags...), startServe(t, flags...)
	var uids []uint64
	for g := uint64(0); g < 336; g += 21 {
		uids = append(uids, 1+g*100_000*128+g)
	}
	c := newRPCClient(t, []string{a.url(), b.url()})
	last := map[uint64]uint64{}
	next := func() bool {
		for _, u := range uids {
			v, err := c.NextSeq(t.Context(), u)
			if err != nil {
				return false
			}
			if v <= last[u] {
				t.Fatalf("uid %d: %d after %d", u, v, last[u])
			}
			last[u] = v
		}
		return true
	}
	waitFor(t, 30*time.Second, "both servers own groups, every uid served", func() bool {
		return next() && counter(t, a, "mig_seq_groups_owned") > 0 && counter(t, b, "mig_seq_groups_owned") > 0
	})
	owned := counter(t, a, "mig_seq_groups_owned")
	before := counter(t, b, "mig_seq_releases_pulled_total")
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	handed := regexp.MustCompile(`"msg":"seq facade: draining`).MatchString(a.logs.String())
	if !handed {
		t.Fatalf("the stopped server did not drain; logs:\n%s", a.logs)
	}
	// Every release, usually; on a loaded host (-race) an ask may run
	// past its window and the group go through etcd instead.
	pulled, failed := counter(t, b, "mig_seq_releases_pulled_total")-before, counter(t, b, "mig_seq_release_pull_failures_total")
	t.Logf("b took %v of a's %v releases directly; %v asks failed", pulled, owned, failed)
	if pulled == 0 {
		t.Fatalf("b took no release directly (%v asks failed)", failed)
	}
	waitFor(t, 10*time.Second, "every uid served by b", next)
}

// counter returns the value of metric name (no labels) on s's /metrics,
// 0 when absent.
func counter(t testing.TB, s *testServer, name string) float64 {
	t.Helper()
	_, body := get(t, s.url()+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}
