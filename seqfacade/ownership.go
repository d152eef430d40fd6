package seqfacade

import (
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
)

// Ownership decides which groups this node may serve and lets it prove so
// to etcd: in this package's Start, a registration and the routing table
// (docs/seq-failover.md); in tests, simpler schemes, without the
// allocator changing. Implementations are safe for concurrent use.
type Ownership interface {
	// Claim returns the claim under which this node may serve group g now:
	// registered, past its activation delay (or handed the group off), and
	// surely still within its right to serve. Otherwise it returns an
	// error wrapping ErrUnavailable (not yet, or no longer: retry later),
	// ErrNotOwner (another node serves g) or ErrNotHome (another
	// datacenter's store does).
	//
	// HAZARD: a Claim may be returned only once no other node can still
	// hand out values of g: the previous owner's deadline has passed, and
	// every max_seq it wrote is visible to a read started now.
	Claim(g int) (Claim, error)
	// Ready says why the node cannot answer now, or nil when it can: for
	// readiness probes.
	Ready() error
}

// Claim is a node's right to serve some groups, for as long as it lasts.
// Groups loaded under a claim are unloaded the moment Done is closed.
// Implementations must be comparable (pointers are), since the node keeps
// one watcher per distinct claim; they are safe for concurrent use.
type Claim interface {
	// Proof returns the comparisons that hold in etcd only while the claim
	// does; every max_seq write carries them.
	Proof() []clientv3.Cmp
	// Done is closed when the claim ends (lease lost, group moved, node
	// closing).
	Done() <-chan struct{}
	// Headroom reads the clock and returns the time left before the claim
	// must be treated as lost: zero or less once it is (or once Done is
	// closed).
	Headroom() time.Duration
}

// live reports whether c still holds, reading the clock.
func live(c Claim) bool { return c.Headroom() > 0 }

// deadlined is implemented by this package's claims (from Start): their
// deadline, ended when the claim ends, whose Live is the same answer as
// Headroom() > 0 but cheaper, and which a group checks directly on the
// hot path.
type deadlined interface {
	deadline() *clock.Deadline
}
