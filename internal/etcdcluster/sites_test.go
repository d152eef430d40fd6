package etcdcluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest/etcdkv"
	"github.com/migsvc/mig/internal/faultproxy"
)

// TestClusterAcrossSites builds what loadtest/scenario runs: three
// members, one per site, each advertising a fault proxy in front of its
// peer port that delays every byte 20 ms and tags each connection with
// the member that opened it (etcd's X-Server-From). A write then takes at
// least one round trip between members; cutting one member off (its own
// proxy, and its connections at the others') leaves the other two
// writing, and the cut member cannot; after the heal it catches up.
func TestClusterAcrossSites(t *testing.T) {
	const oneWay = 20 * time.Millisecond
	var mu sync.Mutex
	proxies := map[int]*faultproxy.Proxy{}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range proxies {
			p.Close()
		}
	})
	advertise := func(i int, peer string) (string, error) {
		p, err := faultproxy.New(peer, faultproxy.WithSourceHeader("X-Server-From"))
		if err != nil {
			return "", err
		}
		p.Delay(oneWay)
		mu.Lock()
		defer mu.Unlock()
		if old := proxies[i]; old != nil {
			old.Close() // ports picked anew
		}
		proxies[i] = p
		return p.Addr(), nil
	}
	c, err := Start(startCtx(t), t.TempDir(), 3, WithTiming(2*oneWay, 20*oneWay), WithPeerAdvertise(advertise))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Close)
	cli := etcdkv.Client(t, c.Endpoints()...)
	t.Cleanup(func() { cli.Close() })
	putEventually(t, cli, "k", "0")

	// The members know each other at the proxies.
	ctx, cancel := context.WithTimeout(t.Context(), etcdkv.CallTimeout)
	ml, err := cli.MemberList(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // name -> hex ID, as X-Server-From has it
	for _, m := range ml.Members {
		ids[m.Name] = fmt.Sprintf("%x", m.ID)
		if n := strings.TrimPrefix(m.Name, "m"); len(m.PeerURLs) != 1 || m.PeerURLs[0] != "http://"+proxies[int(n[0]-'0')].Addr() {
			t.Fatalf("member %s advertises %v, not its proxy", m.Name, m.PeerURLs)
		}
	}

	// A write commits only once a majority has it: at least one round
	// trip between members. (A lower bound is the feature.)
	clk := clock.NewReal()
	start := clk.Mono()
	etcdkv.Put(t, cli, "k", "1")
	if took := clk.Mono() - start; took < 2*oneWay {
		t.Fatalf("a write took %v with %v each way between members", took, oneWay)
	}

	// Cut member 0 off: its own proxy (everything sent to it), and its
	// own connections at the others' proxies (everything it sends).
	victim := 0
	if l := c.Leader(); l >= 0 {
		victim = l // the harder case: the cut-off leader must step down
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := clk.Mono() + 10*time.Second
		for !ok() {
			if clk.Mono() > deadline {
				t.Fatalf("never: %s", what)
			}
			<-clk.After(20 * time.Millisecond)
		}
	}
	eventually("the victim's connections tagged at the others", func() bool {
		for i, p := range proxies {
			if i != victim && !strings.Contains(strings.Join(p.Sources(), ","), ids[memberName(victim)]) {
				return false
			}
		}
		return true
	})
	alone := etcdkv.Client(t, c.Endpoints()[victim])
	t.Cleanup(func() { alone.Close() })
	ctx, cancel = context.WithTimeout(t.Context(), etcdkv.CallTimeout)
	lease, err := alone.Grant(ctx, 5)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	proxies[victim].Cut()
	for i, p := range proxies {
		if i != victim {
			p.CutSource(ids[memberName(victim)])
		}
	}
	var rest []string
	for i, ep := range c.Endpoints() {
		if i != victim {
			rest = append(rest, ep)
		}
	}
	majority := etcdkv.Client(t, rest...)
	t.Cleanup(func() { majority.Close() })
	putEventually(t, majority, "k", "2")
	// Nor does it pass on lease renewals (etcd forwards them to the
	// leader over a connection that carries no X-Server-From), once it
	// has lost touch with the leader: within two election timeouts.
	<-clk.After(2 * 20 * 2 * oneWay)
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := alone.Put(ctx, "k", "lost")
		_, rerr := alone.Get(ctx, "k") // linearizable: needs the leader
		_, kerr := alone.KeepAliveOnce(ctx, lease.ID)
		cancel()
		if err == nil || rerr == nil || kerr == nil {
			t.Fatalf("the cut-off member still serves: put %v, linearizable get %v, lease renewal %v", err, rerr, kerr)
		}
	}

	proxies[victim].Restore()
	for i, p := range proxies {
		if i != victim {
			p.RestoreSource(ids[memberName(victim)])
		}
	}
	eventually("the healed member reads the majority's write", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		r, err := alone.Get(ctx, "k")
		return err == nil && len(r.Kvs) == 1 && string(r.Kvs[0].Value) == "2"
	})
}
