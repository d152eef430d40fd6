// Package h1 is the HTTP/1.1 server `mig serve` answers on: a lean
// replacement for net/http's server, built for many small
// request/response calls on keep-alive connections.
//
// Why not net/http: per request its server parses every header into a
// map of strings, builds an *http.Request and a context chain, starts a
// goroutine that reads ahead of the handler to notice a closed
// connection, and sets deadlines; for a request whose real work is
// issuing one ID, that is most of the server's CPU. This server parses
// the header in place, keeps one buffer per connection, moves deadlines
// only when half of their time has gone, and allocates nothing for a
// request a FastHandler answers (the request is the connection's, and
// FastRequest.Local keeps what a handler reuses from one request to the
// next). Why not github.com/valyala/fasthttp either: measured against it
// with the same fast routes, it spent a fifth to a quarter more CPU per
// request. docs/benchmarks.md has the figures of both comparisons.
//
// Two paths serve a request:
//
//   - A [FastHandler] registered for the request's path answers a POST
//     from its body alone, without an *http.Request; MIG's hot Twirp
//     methods over protobuf take this path. It may decline, having
//     written nothing, and the request then takes the other path.
//   - Server.Handler, an ordinary http.Handler, answers everything else:
//     Twirp over JSON, errors, /metrics, /healthz, /readyz.
//
// What it supports is what a Twirp server needs from HTTP/1.1: keep-alive
// and pipelining, Content-Length and chunked request bodies, "Expect:
// 100-continue", HEAD, HTTP/1.0 clients, TLS (given a tls listener; it
// speaks HTTP/1.1 only, which ALPN negotiates), graceful shutdown that
// finishes requests in flight, and the timeouts of net/http's server.
// What it refuses with a clear status: a header over the size limit
// (431), a malformed request line or header (400), both Content-Length
// and Transfer-Encoding, or conflicting lengths (400: a request smuggling
// shape), a transfer coding other than chunked (501), an HTTP version
// other than 1.x (505), an Expect other than 100-continue (417). A
// chunked body with trailer fields fails to read, and the connection
// closes after the answer. Answers are buffered whole and sent with a
// Content-Length, so a handler cannot stream, hijack or flush.
//
// Reading requests is where an HTTP server is most exposed, so the
// parser is held to net/http's: FuzzDifferential gives the same bytes to
// a connection and to http.ReadRequest and requires the same requests,
// cut at the same places, and the same refusals, except for the shapes
// listed at parseHead that h1 refuses on purpose.
package h1
