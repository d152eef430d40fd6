// Package scenario proves "never twice, never backwards" under the faults
// real deployments meet. Each scenario starts a local deployment of its
// own, puts a steady load on it with every answer recorded in the
// loadtest Checker, plays one fault, waits until everything answers
// again, and reports what was done when, what the clients saw, what it
// measured and the checker's verdict.
//
// # The deployment
//
// Three datacenters, dc1 to dc3, 20 ms apart each way, on loopback:
//
//   - each has its own etcd (one member, in this process, package
//     internal/etcdcluster) for its worker IDs, on ranges 0-2, 3-5 and
//     6-8;
//   - each runs one member of a 3-member sequence cluster spanning them
//     (mig serve --seq-etcd on every server; the default homes: groups
//     0-111 at home in dc1, 112-223 in dc2, 224-335 in dc3, each falling
//     back on the next datacenters), tuned for the 40 ms round trip as
//     etcd's guide says: heartbeat 40 ms, election timeout 400 ms;
//   - each runs two `mig serve` (separate OS processes, from a binary
//     built with -tags faultinject); dc1 has a standby slot that a
//     scenario may start a replacement in.
//
// The WAN is fault proxies (internal/faultproxy) that delay every byte
// 20 ms and can be cut (network.go):
//
//   - each sequence member advertises to the others a proxy in front of
//     its peer port; the proxy tags each connection with the member that
//     opened it (etcd's X-Server-From header), so that one datacenter's
//     member can be cut off both ways although every member dials from
//     127.0.0.1;
//   - every server reaches every etcd member through a proxy of its own
//     (delayed to the other datacenters' sequence members), so that one
//     server can be cut off alone;
//   - the clients of a datacenter reach another datacenter's servers
//     through a link proxy (their http.Client maps the address), and so
//     do its servers when they forward a sequence call to an owner there
//     (mig serve --fault-peer-via).
//
// A server that exits unbidden is started again after 250 ms, as a
// supervisor would: after kill -9 its worker-ID range stays full until
// the dead process's lease expires, and the restarts find that out.
//
// The servers run with short worker-ID leases (TTL 2 s, margin 500 ms,
// etcd timeout 300 ms) so that faults play out in seconds, and the
// default watermark window (10 s): with a window shorter than the lease a
// cut-off server runs out of watermark before its lease can expire, and
// no partition would ever test the self-fencing deadline. The sequence
// settings are those docs/seq-multidc.md recommends for 40 ms between
// sites: activation delay 1 s, margin 200 ms, confirmations every 250
// ms, lease TTL 2 s, etcd timeout 400 ms; and planned rounds every second
// (16 groups a round), so that a returning datacenter's groups are home
// in seconds.
//
// # The load and the checker
//
// ID clients: two prefer each server slot, from that slot's datacenter,
// and fail over to the next slots in turn when it does not answer (or
// answers unavailable), coming back to it at the next request, so every
// server, a restarted one included, is asked all the time; one more a
// datacenter uses migclient.Client's own failover. Sequence clients: two
// a datacenter on migclient.Client over that datacenter's servers, with
// the others' as WithRemote, which routes each uid to the node that
// serves it, wherever it is; and one in dc1 that does not route: plain
// JSON POSTs with no routing version, as curl sends, which the nodes
// forward to the owner. They all draw from the same 24 uids, 8 homed in
// each datacenter, each in a group of sections of its own: each uid has
// one history, written from every datacenter, checked whole (no value
// twice, no rollback, porcupine).
//
// The checker keys the ID order by datacenter and worker ID, not by
// process: whoever holds a worker ID, after a restart or a takeover, must
// continue above every ID handed out under it before, in real time. A
// late self-fence breaks exactly that.
//
// # What is measured
//
// For every uid, the longest wait of a retrying caller (from the send of
// the first request that failed, or of a late answer, to the next
// answer), as the clients of each datacenter saw it in single-uid calls
// (a batch waits for its slowest share: its wait is the client's, shown
// per client, not each of its uids'); for each
// datacenter, the longest wait of its ID clients; NextSeq's latency while
// no fault is under way, for uids homed in the caller's datacenter and
// elsewhere, routed and forwarded; the max_seq writes of every server
// (mig_seq_extensions_total, read every second) per million sequence
// values; and each scenario's own figures (Result.Figures) against the
// bound the design promises. Figures are reported, never asserted: the
// machine is shared, and speed is not a test's to assert.
//
// # Faults in a running server
//
// A fault-injection build of mig (cmd/mig/faultinject.go) has more serve
// flags: --fault-clock-file, a file holding an offset the server adds to
// its wall clock, re-read every 100 ms (how the clock scenarios step a
// live server's clock); --fault-clock-rate, which slows the server's
// monotonic clock: below about 0.75 its self-fencing deadline comes after
// etcd has expired its lease, a deliberately broken build
// (Config.BrokenFence) that the partition scenario must fail; and
// --fault-peer-via, the proxies its forwarded sequence calls go through.
// Production builds have none of them.
//
// A scenario may give the servers an NTP check (Settings.NTPCheck):
// --ntp-servers, a fake NTP server in this process (internal/fakentp)
// that answers the host's time, which the clock file does not move. The
// clock-forward-held scenario does: it shows a wrong step forward held
// by the ID clock, refuted by the check at once, and no ID dated by it.
//
// # Time
//
// The runner reads time only through a clock.Source (Config.Clock).
package scenario
