// Package faultproxy is a TCP proxy that tests put between a client and a
// server (etcd, usually) to make the network misbehave on demand.
//
// The faults are those MIG's safety arguments are about:
//
//   - [Proxy.Cut] is a partition. Bytes stop flowing both ways but no
//     connection is closed: each side sees silence and its own timeouts,
//     never a reset, as when a switch drops packets and TCP retransmits.
//     Data in flight is held, not lost.
//   - [Proxy.Restore] heals it. Held data is delivered in order and the same
//     connections go on, so a gRPC (HTTP/2) connection survives a short cut,
//     as a TCP connection survives a short partition.
//   - [Proxy.Delay] adds latency to every chunk, in both directions.
//   - [Proxy.Reset] closes every connection with a TCP reset, as a crashed
//     peer or a middlebox would.
//   - [Proxy.CutSource] cuts, both ways, only the connections of one
//     client of a proxy that several share: with [WithSourceHeader] the
//     proxy reads each connection's HTTP/1.1 requests and tags it with a
//     header's value (etcd's X-Server-From names the member that opened a
//     peer connection), since on loopback every client comes from
//     127.0.0.1. That is how one datacenter's etcd member is cut from the
//     others both ways while they still reach each other.
//
// A lease renewal that the client sent but that reaches etcd only after the
// cut ends, or never, is exactly the case the self-fencing deadlines in
// package workerid and seqfacade must survive.
//
// The proxy listens on 127.0.0.1 and forwards only to loopback targets.
package faultproxy
