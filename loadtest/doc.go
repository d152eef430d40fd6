// Package loadtest puts load on MIG, measures its latency, and checks
// every answer against MIG's two promises: no message ID is ever issued
// twice and a worker's IDs strictly increase; no uid's sequence ever rolls
// back or repeats. It is what `mig loadtest` runs, and what the fault
// scenarios run their steady load and their verdict with.
//
// # Load
//
// [Run] drives one of two modes against [Targets]: ModeIDs calls NextIDs
// (with a batch size) through an [IDClient] (a *migclient.Client, or one
// per load client, Targets.IDsEach, so that the load spreads over the
// endpoints); ModeSeq calls NextSeq, or NextSeqs with a batch of distinct
// uids, through a [SeqClient], the uids drawn from a [Dist]: uniform, a
// hot set, or Zipf, over uids spread evenly across the servers' uid space
// (so that every group of sections, and every node, gets load).
// [Transport] is an HTTP transport that costs the load generator a third
// less CPU a call than net/http's, so that more of a shared machine goes
// to the server under test.
//
// The load is closed-loop (Config.Rate 0: Clients goroutines, each sending
// its next request as soon as its last is answered, or, after a failure,
// after a wait that doubles with each failure in a row up to a cap) or
// open-loop at a fixed rate. In the open loop request i is due at start + i/Rate, the
// clients take the requests in turn, and a request's latency is measured
// from when it was due, not from when a client got round to sending it: a
// stall delays everything behind it, and that wait is counted, instead of
// being left out as a closed loop does ("coordinated omission").
//
// Latency goes into HDR histograms (github.com/HdrHistogram/hdrhistogram-go),
// one for the whole run and one per Config.Interval for a latency-over-time
// series. A progress line is written every interval while the load runs;
// the [Report] has throughput, errors by Twirp code, the attempts that
// failed by endpoint and cause ([Failure]: "connection refused" at
// 127.0.0.1:7070, counted as connections fail, so that an endpoint the
// client failed over from shows too), answers by endpoint, latency
// percentiles, the series, the CPU the load generator itself spent per
// request, and the [Checker]'s [Verdict]. The run passes when the checker
// found no violation and some request succeeded. [WriteSummary] prints the
// report for people, its JSON form is stable for machines (64-bit numbers
// as strings), and [WritePlot] draws the series as a self-contained HTML
// page.
//
// With Config.RedisAddr the same load shape runs a second time, against
// Redis INCR (LINE's design before MIG) through a minimal RESP client of
// this package, and the report puts the two side by side.
//
// # Benchmarks
//
// [Bench] is the same harness cut down for Go benchmarks (cmd/mig's
// BenchmarkServe and BenchmarkRedisINCR): a fixed number of calls, closed
// or open loop, through [Caller]s that speak the wire directly and
// allocate nothing per call: [WireConn] posts MIG's protobuf over raw
// HTTP/1.1 and counts the IDs off the wire, [RedisConn] is the RESP
// client of the Redis phase above, [ClientCaller] goes through an
// IDClient. [MeasurePauses] measures how often the host keeps a busy
// thread off its core, the floor under every tail latency measured here.
//
// # Checker
//
// The [Checker] is pure logic: it is given answers (values, client,
// server, send and arrival times) and says whether they could have come
// from a correct service. See its documentation for what exactly is
// checked and why that is exact.
//
// # Reuse
//
// The fault scenarios run the same pieces: Run with a long Duration (and
// the checker's Tolerance and Ahead widened for clock faults), stopped by
// cancelling its context, gives a steady load, the requests attempted,
// succeeded and failed, each client's longest unavailability, and the
// verdict; or a Checker alone can be fed answers collected elsewhere.
//
// # Time
//
// Every time this package reads comes from a clock.Source (Config.Clock),
// so the runner, the checker and the Redis client never call time.Now.
package loadtest
