// Package rpc serves MIG over Twirp: the [Server]. The wire protocol
// (mig.proto, the code generated from it, and the constants both ends
// share) is package rpc/migv1; the Go client is package migclient, which
// imports neither this package nor anything it links (etcd, Prometheus),
// so applications stay light.
//
// The server only translates. A handler checks the request, turns it into
// a call on the domain ([IDIssuer], normally a *workerid.Worker), and turns
// the result back into a message; every domain error becomes a Twirp
// error in one function (errors.go), so a code never depends on which
// handler saw the error:
//
//	bad input (count, id, uid, uids), a JSON
//	  field unknown, given twice or of the
//	  wrong type                               invalid_argument, meta argument=the field
//	no worker ID held, watermark reached,
//	  sequence numbers exhausted, clock out
//	  of range or unsafe, the sequence node
//	  unable to prove a value safe             unavailable, meta retryable=true
//	a uid another node serves                  failed_precondition, with the routing table
//	a body that is not one JSON object, an
//	  undecodable protobuf body, a body too
//	  large                                    malformed
//	anything else                              internal, cause kept
//
// The same function gives every message its one style: a sentence that
// names the field, the value and the limit ("count 0 is not in
// 1..100000", `uid: "-1" is not an unsigned integer`, `"cnt" is not a
// field of NextIDsRequest (its fields are count)`), or says what the
// node cannot do and why; never the Go package names the domain's errors
// begin with. The domain's error stays the Twirp error's cause, for the
// log.
//
// Twirp's generated code decodes JSON leniently (an unknown field is
// dropped, so {"cnt":3} would mean one ID) and refuses what it cannot
// decode without naming the field; the server checks JSON bodies itself
// first (jsoncheck.go). Input is checked before the issuer or the
// sequence node is called, so bad input never consumes a number.
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
// # Repeats
//
// Every answer is built so that a client may repeat a call whose answer
// it lost, on this worker or another: NextIDs reserves fresh IDs above
// everything the worker issued (a lost answer's IDs are skipped, never
// reissued), Decode reads no state, a sequence call's lost value is
// skipped and the repeat's is above it. unavailable, with meta
// retryable=true, promises that the request did nothing here. migclient's
// documentation says how the Go client uses this.
package rpc
