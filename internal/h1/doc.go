// Package h1 is the HTTP/1.1 server `mig serve` answers on: a lean
// replacement for net/http's server, built for many small
// request/response calls on keep-alive connections.
//
// Why not net/http: on the two shared cores MIG is measured on, net/http's
// server spent about 25 µs of CPU per single-ID request, of which issuing
// the ID is 13 ns. Per request it parses every header into a map of
// strings, builds an *http.Request and a context chain, starts a
// goroutine that reads ahead of the handler to notice a closed
// connection, and sets deadlines. Redis answers INCR for about 9 µs of
// CPU. This server spends about 9 µs: it parses the header in place,
// keeps one buffer per connection, refreshes deadlines only when half of
// their time has gone, and allocates nothing for a request a FastHandler
// answers (the request is the connection's, and FastRequest.Local keeps
// what a handler reuses from one request to the next).
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
// other than 1.0 and 1.1 (505). Answers are buffered whole and sent with
// a Content-Length, so a handler cannot stream, hijack or flush.
package h1
