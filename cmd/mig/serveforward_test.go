package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestServeAnyNodeAnswers: three real `mig serve` on one etcd; a client
// that does not route (JSON, no routing_version, as curl or a load
// balancer sends) gets 200 for every NextSeq at any one node, whichever
// node owns the uid (the node that received the call forwards it), values
// per uid increase, and no answer carries the routing table. The same
// through a round-robin TCP balancer, a new connection (so a new node)
// for every call.
func TestServeAnyNodeAnswers(t *testing.T) {
	etcd := etcdEndpoint(t)
	var servers []*testServer
	for range 3 {
		servers = append(servers, startServe(t, append([]string{"--etcd", etcd, "--seq-rebalance-interval", "200ms"}, fastFlags...)...))
	}
	// uids in groups all over the space, so that every node owns some.
	var uids []uint64
	for g := uint64(0); g < 336; g += 21 {
		uids = append(uids, 1+g*100_000*128+g)
	}
	// Wait for the groups to spread: each server owns some of the uids.
	c := newRPCClient(t, []string{servers[0].url()})
	waitFor(t, 30*time.Second, "the groups spread over the three servers and served", func() bool {
		owners := map[string]bool{}
		for _, u := range uids {
			if _, err := c.NextSeq(t.Context(), u); err != nil {
				return false
			}
		}
		for _, u := range uids {
			for _, s := range servers {
				code, _ := postJSONRaw(t, s.url()+"/twirp/mig.v1.SeqService/CurSeq", fmt.Sprintf(`{"uid":"%d","want_routing":true}`, u))
				if code == http.StatusOK {
					owners[s.addr] = true
				}
			}
		}
		return len(owners) == 3
	})

	last := map[uint64]uint64{}
	var mu sync.Mutex
	check := func(via string, hc *http.Client, base string) {
		for round := range 5 {
			for _, u := range uids {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/twirp/mig.v1.SeqService/NextSeq",
					strings.NewReader(fmt.Sprintf(`{"uid":"%d"}`, u)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatalf("%s: uid %d: %v", via, u, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s, round %d: uid %d: %d %s", via, round, u, resp.StatusCode, body)
				}
				var ans map[string]any
				if err := json.Unmarshal(body, &ans); err != nil {
					t.Fatalf("%s: uid %d: %v: %s", via, u, err, body)
				}
				if r, ok := ans["routing"]; ok && r != nil { // Twirp writes every field: null for none
					t.Fatalf("%s: uid %d: a client that sent no version got the table: %s", via, u, body)
				}
				v, err := strconv.ParseUint(fmt.Sprint(ans["seq"]), 10, 64)
				if err != nil {
					t.Fatalf("%s: uid %d: seq %v", via, u, ans["seq"])
				}
				mu.Lock()
				if v <= last[u] {
					t.Fatalf("%s: uid %d: %d after %d", via, u, v, last[u])
				}
				last[u] = v
				mu.Unlock()
			}
		}
	}
	for _, s := range servers {
		check("node "+s.addr, http.DefaultClient, s.url())
	}
	lb := roundRobin(t, servers)
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	check("round-robin balancer", hc, "http://"+lb.addr)
	if n := lb.conns.Load(); n < int64(3*len(uids)) {
		t.Fatalf("the balancer saw %d connections", n)
	}
	_, body := get(t, servers[0].url()+"/metrics")
	if !strings.Contains(body, "mig_seq_forwarded_total") {
		t.Fatalf("metrics lack the forwarded calls:\n%s", body)
	}
}

// balancer is a round-robin TCP balancer on loopback: each connection
// goes to the next backend.
type balancer struct {
	addr  string
	conns atomic.Int64
}

func roundRobin(t *testing.T, servers []*testServer) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			out, err := net.Dial("tcp", servers[i%len(servers)].addr)
			if err != nil {
				in.Close()
				continue
			}
			wg.Go(func() {
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(out, in)
					out.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				_, _ = io.Copy(in, out)
				<-done
				in.Close()
				out.Close()
			})
		}
	})
	return b
}
