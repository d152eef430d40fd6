// Package migclient is the Go client of MIG: message IDs (IDService) and
// per-user sequences (SeqService) over Twirp, with failover between
// endpoints and datacenters and routing of each uid to the node that
// serves it.
//
// It is the one package an application imports. It links the wire
// protocol (package rpc/migv1, protobuf and Twirp's runtime), the routing
// table (seqfacade/route) and the ID layout (package mig), and nothing of
// the server: no etcd, gRPC or Prometheus. A program that only calls it
// links 44 packages outside the standard library, itself included,
// against 188 when the client lived in the server's package rpc
// (README.md has the command; TestLightDependencies keeps the count
// under 60).
//
//	c, err := migclient.New([]string{"mig-1.tokyo:7070", "mig-2.tokyo:7070"},
//		migclient.WithRemote("osaka", "mig-1.osaka:7070", "mig-2.osaka:7070"))
//	...
//	ids, origin, err := c.NextIDs(ctx, 10)
//	seq, err := c.NextSeq(ctx, uid)
//
// # Datacenters
//
// New takes the endpoints of the client's own datacenter (MIG workers, or
// load balancers in front of them); [WithRemote] adds each other
// datacenter's, nearest first. NextIDs and Decode go to the client's own
// datacenter while any of its endpoints answers, and to the remote ones,
// in order, only when every endpoint before has failed: IDs are unique
// across datacenters, so any worker will do, and a near one answers
// sooner. A datacenter whose every endpoint failed in one call is skipped
// for a second, but for one call that tries it again, so that a
// datacenter cut off by a partition does not cost every call a timeout
// per endpoint. Sequence calls go to the node the routing table names for
// the uid, in whichever datacenter it is: one node serves each uid, and
// the table says which.
//
// # Failover of IDService calls
//
// Each call makes one pass at most over the endpoints: within a
// datacenter it starts at the endpoint that last answered (at first a
// random one, so that many clients spread), which keeps one client's IDs
// increasing while that worker is healthy and its connections warm. It
// moves on when an attempt fails in a way another endpoint may not:
//
//   - the server answered unavailable (it did nothing: no worker ID held,
//     watermark reached, clock unsafe, ...);
//   - no answer came from a MIG server: the connection could not be made,
//     it broke, the attempt's timeout ([WithTimeout]) passed, or a proxy
//     in front of the server answered with an HTTP error of its own (502,
//     503, ...).
//
// Any other answer (invalid_argument, internal, ...) is returned at once:
// another worker would say the same. When every endpoint fails the error
// is unavailable, with meta retryable=true, and wraps each endpoint's
// error. Errors from servers are twirp.Error values.
//
// Both calls of IDService are safe to repeat, even when the request may
// have reached a server whose answer was lost:
//
//   - Decode reads no state: any worker gives the same answer.
//   - NextIDs does change state, but a repeat cannot make a duplicate.
//     Each call reserves fresh IDs above everything its worker issued
//     before; if the answer is lost (a timeout after the request was sent,
//     a connection reset mid-answer), the IDs it carried were generated
//     but never delivered, so nobody ever uses them: they are skipped, as
//     IDs unused after a crash are. The repeat gets new IDs. What would
//     make a duplicate is handing an answer out twice, so the client never
//     caches, replays or shares an answer: each attempt is a new request,
//     and an abandoned attempt's answer is dropped with its connection.
//
// # Sequences and routing
//
// A SeqService call goes to the node that the client's routing table
// names for the uid. A client with no table asks its configured endpoints
// (its own datacenter's first) with want_routing set, so the node answers
// with the table, or refuses a uid it does not serve with the table
// attached, and never forwards the request on the client's behalf. Every
// request carries the table's version, and an answer that carries a newer
// table replaces it: a client with a stale or empty table reaches the
// owner in at most one extra round trip. When the owner does not answer,
// or answers unavailable (a section in its activation delay after a
// move), the call asks another node the table names, which answers or
// redirects with a newer table; a round that learned a newer table is
// followed at once, others after a little wait (50 ms, then 100), five
// rounds at most. A node that did not answer is skipped by the calls of
// the next quarter second too (then one call that wants it tries it
// again), so that a lost owner costs an attempt's timeout now and then,
// not one a call. An attempt that has waited a quarter second for its
// node asks another node of the table, every quarter second, and is
// abandoned for the new owner as soon as a newer table moved its uids: a
// node that swallows requests (its datacenter cut off) holds a call only
// until its sections are served elsewhere. A batch's shares for several
// nodes go out together. Repeating a sequence call is
// safe: a value whose answer was lost is skipped, and the repeat's is
// above it.
//
// Every answer is checked: the right number of IDs, strictly increasing
// and below 2^63; sequences above 0. One that is not is an error wrapping
// [ErrBadAnswer], never retried.
//
// # Transport
//
// By default the client sends its requests through net/http's Transport,
// tuned for many small calls: 64 idle connections kept per endpoint
// (http.DefaultTransport keeps 2, and concurrent callers would open a
// connection for nearly every call), idle connections closed after 30 s
// (before the server's 2 minutes), a dial given up after 1 s (a live node
// accepts within a round trip; the call moves on to the next endpoint),
// and the TLS handshake and the wait for the answer bounded by the
// attempt's timeout. [WithHTTPClient] replaces it, for TLS settings or a
// transport of the caller's. Package loadtest has a leaner transport that
// saves a load generator about 10 µs of CPU a call (docs/benchmarks.md);
// an application has no need of it.
package migclient
