package scenario

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/migsvc/mig/internal/faultproxy"
)

// network is the WAN between the datacenters, made of fault proxies that
// delay every byte oneWay and can be cut:
//
//   - peers: one proxy in front of each sequence member's peer port,
//     which the members advertise to each other; it tags each connection
//     with the member that opened it (etcd's X-Server-From), so that one
//     datacenter's member can be cut off both ways;
//   - links: from each datacenter to each server of another, which that
//     datacenter's clients dial for the server (their http.Client maps
//     the address) and its servers forward sequence calls through
//     (mig serve --fault-peer-via);
//   - each server's own proxies to the sequence members of other
//     datacenters (slot.seqProxies), which deploy.go makes.
//
// Safe for concurrent use.
type network struct {
	mu    sync.Mutex
	peers map[int]*faultproxy.Proxy // by sequence member
	links map[linkKey]*link
}

type linkKey struct {
	from int    // datacenter index
	to   string // the server's address
}

type link struct {
	toDC  int
	proxy *faultproxy.Proxy
}

func newNetwork() *network {
	return &network{peers: map[int]*faultproxy.Proxy{}, links: map[linkKey]*link{}}
}

// setPeer records the peer proxy of sequence member i (replacing one made
// for ports etcdcluster then picked anew).
func (n *network) setPeer(i int, p *faultproxy.Proxy) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.peers[i]; old != nil {
		old.Close()
	}
	n.peers[i] = p
}

// link returns the proxy from datacenter from to the server at addr in
// datacenter to, made on first use.
func (n *network) link(from, to int, addr string) (*faultproxy.Proxy, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := linkKey{from, addr}
	if l, ok := n.links[k]; ok {
		return l.proxy, nil
	}
	p, err := faultproxy.New(addr)
	if err != nil {
		return nil, fmt.Errorf("link from %s to %s: %w", dcName(from), addr, err)
	}
	p.Delay(oneWay)
	n.links[k] = &link{toDC: to, proxy: p}
	return p, nil
}

// via returns the address a host in datacenter from dials for addr: the
// link's proxy for a server of another datacenter, addr itself otherwise.
func (n *network) via(from int, addr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l, ok := n.links[linkKey{from, addr}]; ok {
		return l.proxy.Addr()
	}
	return addr
}

// viaFlag is --fault-peer-via for a server of datacenter from.
func (n *network) viaFlag(from int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var pairs []string
	for k, l := range n.links {
		if k.from == from {
			pairs = append(pairs, k.to+"="+l.proxy.Addr())
		}
	}
	return strings.Join(pairs, ",")
}

// client returns an HTTP client for the hosts of datacenter from: it
// reaches the servers of other datacenters through the links.
func (n *network) client(from int) *http.Client {
	var d net.Dialer
	tr := &http.Transport{
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, n.via(from, addr))
		},
	}
	return &http.Client{Transport: tr}
}

// isolate cuts (or, with cut false, restores) datacenter dc from every
// other, both ways: its sequence member's peer traffic, and the links
// from and to it. The servers' own proxies to other datacenters' members
// are the caller's (env.isolate).
func (n *network) isolate(dc int, seqID string, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, p := range n.peers {
		switch {
		case i == dc && cut:
			p.Cut()
		case i == dc:
			p.Restore()
		case cut:
			p.CutSource(seqID)
		default:
			p.RestoreSource(seqID)
		}
	}
	for k, l := range n.links {
		if k.from == dc || l.toDC == dc {
			if cut {
				l.proxy.Cut()
			} else {
				l.proxy.Restore()
			}
		}
	}
}

// close closes every proxy of the network.
func (n *network) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.peers {
		p.Close()
	}
	for _, l := range n.links {
		l.proxy.Close()
	}
}
