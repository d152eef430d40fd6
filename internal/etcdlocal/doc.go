// Package etcdlocal runs etcd inside the current process, on loopback only.
//
// It serves two masters. `mig serve` with no --etcd starts one member with
// [Start] in its data directory, so one command runs the whole service on a
// laptop. Tests start a member, to check "never twice, never backwards"
// against the real thing and not against a mock of etcd's behaviour; a
// cluster of several members whose members can be stopped like crashed
// processes is package etcdcluster, built on [Launch], and kept apart so
// that the production binary does not link it. Tests should use the
// helpers in package etcdtest, which tie lifetimes to a testing.TB.
//
// Things about embedded etcd (go.etcd.io/etcd/server/v3/embed, v3.7.3) that
// shape this package:
//
//   - embed.Etcd.Close drains client connections gracefully for up to the
//     request timeout (5 s plus two election timeouts) while any client
//     holds a stream open (a watch, a lease keep-alive, a partitioned
//     connection that never acknowledges GOAWAY). Close here bounds that
//     drain ([Config.DrainTimeout]) by stopping etcd's gRPC servers itself;
//     callers should still close their clients first.
//   - embed.Etcd.Close panics when called twice; Close here is idempotent.
//   - A graceful stop of a leader first hands leadership to a follower. A
//     stopped cluster member here skips that, as a crashed process would.
//   - etcd registers its metrics on the default Prometheus registry when its
//     packages are initialised; nothing can stop that. MIG exports its own
//     metrics from a registry of its own, and the members here serve no
//     separate metrics listener.
//   - Port 0 works for a single member. Cluster members must know each
//     other's URLs before they start, so etcdcluster picks free ports
//     itself and keeps them across restarts.
//   - etcd's database lock waits forever when the directory is in use, so
//     Start takes a lock of its own first and fails with [ErrDirInUse].
//   - Killing a cluster member ([Server.Kill]) is immediate, but the end
//     of its shutdown takes up to a second in the background (a net/http
//     Shutdown waiting on a peer connection); [Server.Close] waits for it.
//   - A new cluster logs "failed to update storage version ... missing
//     term information" once at error level: etcd's version monitor runs
//     before the first term is stored, and succeeds on its next round.
//
// Embedded etcd has neither TLS nor authentication here, which is why every
// address must be a loopback address.
package etcdlocal
