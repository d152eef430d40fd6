// Package workerid leases a worker ID from etcd and keeps the worker's
// generator safe while it holds it.
//
// A [Worker] claims the lowest free worker ID in its datacenter's range
// with a create-if-absent transaction bound to its etcd lease, then:
//
//   - Self-fences. It renews the lease in its own loop with KeepAliveOnce
//     and computes its deadline as the send time of the last acknowledged
//     renewal plus the TTL the server granted, minus a margin. The server
//     renews a lease to its own now + TTL when the renewal arrives, which
//     is after the send, so the worker's deadline always falls before the
//     server can expire the lease and hand the ID to someone else. (The
//     client library's own loss signal fires after the expiry: too late.)
//     Past the deadline the generator is stopped and callers get
//     [ErrNotHeld] until a new claim succeeds. Stopping it takes
//     goroutines, which a paused or starved process may not run in time,
//     so [Worker.Next] and [Worker.NextN] also read the clock after
//     reserving IDs and refuse, skipping them, once the deadline has
//     passed.
//   - Watches its claim key, and fences as soon as etcd reports it
//     deleted by anyone else (an operator, or its lease revoked): the
//     lease renewals, which go on after a delete, would not tell it.
//   - Persists a time watermark W under the worker ID, not bound to the
//     lease, in a transaction that proves the claim still holds. The
//     generator never issues a tick above W; W is extended to now + Window
//     in the background when half the window is left, so the hot path never
//     waits on etcd.
//
// Uniqueness across holders of one worker ID rests on the watermark alone:
// a new holder reads W in the same transaction that claims the ID and
// starts strictly after it, whatever its wall clock says, and an old
// holder can never raise W again once its claim is gone. Nor can W go
// down behind the holder's back: every write of W also requires the key's
// revision to be the one the holder last learned, so a write whose call
// timed out, and which etcd applies later after a higher W was written,
// fails instead of putting the lower W back under ticks already issued.
// The deadline is
// what keeps one holder's IDs in order with the next holder's in real
// time; the watermark is what makes a duplicate impossible even if a
// deadline were missed.
//
// Each datacenter has an etcd cluster of its own, so that a datacenter cut
// off from the others keeps issuing, and hands out worker IDs from its own
// range only. Worker IDs are unique across datacenters because the ranges
// are disjoint and each cluster serves one datacenter: the first worker
// records its datacenter as the cluster's, and every datacenter's range
// (its own and Config.Others); a later worker of another datacenter, or
// one whose ranges differ from the recorded ones or miss one, is refused
// with [ErrMismatch] saying what differs. What no cluster can see is
// another cluster: two clusters each consistent within themselves but
// configured differently (each told the other's range wrongly, or both
// given the same range) go unnoticed.
//
// Keys under Config.Prefix (default "/mig"):
//
//	/mig/layout               the ID layout, recorded by the first worker
//	/mig/cluster              the datacenter the cluster belongs to, recorded
//	                          by the first worker
//	/mig/datacenters/<dc>     each datacenter's worker-ID range
//	/mig/workers/<NN>         the claim, bound to the holder's lease
//	/mig/watermarks/<NN>      the watermark, outliving every lease
package workerid
