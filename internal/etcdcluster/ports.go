package etcdcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Cluster ports come from below the kernel's ephemeral range (32768-60999
// on Linux, 49152-65535 elsewhere). Port 0 listeners and outgoing
// connections all over the test binary take their ports from that range,
// and a stopped member's ports sit free until Restart: outside it, nothing
// but another explicit choice can take them meanwhile.
const (
	portLow  = 20000
	portHigh = 32768 // exclusive
)

// errNoFreePort means no free port was found after many tries.
var errNoFreePort = errors.New("etcdcluster: no free loopback port")

// freePorts returns n distinct ports that were free on 127.0.0.1 just now.
// Someone may take one before etcd binds it; callers retry on EADDRINUSE.
func freePorts(n int) ([]int, error) {
	seen := make(map[int]bool, n)
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			return nil, errNoFreePort
		}
		p := portLow + rand.IntN(portHigh-portLow)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			return nil, fmt.Errorf("etcdcluster: releasing probe port %d: %w", p, err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}
