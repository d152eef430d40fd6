// Package rpc serves MIG over Twirp and calls it: the wire protocol
// (mig.proto, generated into package migv1), the [Server] and the
// failover [Client].
//
// The server only translates. A handler checks the request, turns it into
// a call on the domain ([IDIssuer], normally a *workerid.Worker), and turns
// the result back into a message; every domain error becomes a Twirp
// error in one function (errors.go), so a code never depends on which
// handler saw the error:
//
//	bad input (count, id)                      invalid_argument, naming field, value and limit
//	no worker ID held, watermark reached,
//	  sequence numbers exhausted, clock out
//	  of range or unsafe                       unavailable, meta retryable=true
//	request body too large                     malformed
//	anything else                              internal, cause kept
//
// Input is checked before the issuer is called, so bad input never
// consumes an ID.
//
// Beside the Twirp routes the server's handler serves /metrics
// (Prometheus, from a registry of its own: the embedded etcd server fills
// the default one), /healthz (the process runs) and /readyz (every
// readiness check registered with [WithReadiness] passes).
//
// # Serving
//
// [Server.Handler] is an ordinary http.Handler. mig serve runs it on
// internal/h1, a lean HTTP/1.1 server, together with
// [Server.FastHandlers]: the hot methods (NextIDs, NextSeq, NextSeqs,
// CurSeq) over protobuf, answered from the request body without an
// *http.Request, Twirp's context values and hooks. They call the same
// service methods, and their errors go through the same translation, so
// an answer does not depend on the path that gave it (the fuzz tests
// compare the two). They allocate nothing: each connection keeps its
// request and response messages for the next request, so a loaded server
// leaves the collector idle. Everything else, JSON included, takes
// Handler.
//
// The [Client]'s default transport is the other half for http://
// endpoints: each call runs on the caller's goroutine over a pool of
// keep-alive connections, at about two thirds of http.Transport's CPU per
// call (see transport.go).
//
// # Retrying
//
// Both calls of IDService are safe to repeat, and the [Client] repeats
// them on the next endpoint when an answer does not come:
//
//   - Decode reads no state: any worker gives the same answer.
//   - NextIDs does change state, but a repeat cannot make a duplicate.
//     Each call reserves fresh IDs above everything its worker issued
//     before; if the answer is lost (a timeout after the request was sent,
//     a connection reset mid-response), the IDs it carried were generated
//     but never delivered, so nobody ever uses them: they are skipped, as
//     IDs unused after a crash are. The repeat gets new IDs. What would
//     make a duplicate is handing an answer out twice, so the client never
//     caches, replays or shares an answer: each attempt is a new request,
//     and an abandoned attempt's answer is dropped with its connection.
//
// A call that is not safe to repeat would fail over only when the request
// provably never reached a server (the connection could not be made) or
// the server answered unavailable, which promises it did nothing.
package rpc
