// Package lease keeps an etcd lease alive and says, conservatively, until
// when it is surely held: the self-fencing deadline that worker IDs and
// sequence sections both stop serving at.
//
// The etcd server renews a lease to its own now + TTL when a renewal
// arrives, which is after the client sent it. The client library's loss
// signal (the keep-alive channel closing) fires at receipt of the last
// acknowledgement + TTL: at or after the server has already expired the
// lease, too late to stop on. So a [Lease] renews in its own loop with
// KeepAliveOnce and keeps its deadline at
//
//	send time of the last acknowledged renewal + granted TTL - margin
//
// on the monotonic clock. Before the deadline, etcd cannot have expired
// the lease (a new raft leader only lengthens leases); past it, the
// holder must act as if it had.
//
// [Lease.LastRenewal] ties a holder's own reads to the renewals: a
// linearizable read sent after a renewal was acknowledged shows what held
// after that renewal's send time, which is how a routed sequence node
// bounds its right to serve (docs/seq-failover.md).
package lease
