// Package scenario proves "never twice, never backwards" under the faults
// real deployments meet. Each scenario starts a local deployment of its
// own, puts a steady load on it with every answer recorded in the
// loadtest Checker, plays one fault, waits until everything answers
// again, and reports what was done when, what the clients saw and the
// checker's verdict.
//
// # The deployment
//
// Two datacenters, dc1 and dc2, each with its own 3-member etcd cluster
// (package internal/etcdcluster, in this process) and 3 `mig serve`
// processes (separate OS processes, from a binary built with -tags
// faultinject), on worker-ID ranges 0-2 and 3-5, plus a standby slot per
// datacenter that a scenario may start a replacement in. Every server
// reaches every member of its etcd through a fault proxy of its own
// (internal/faultproxy), so one server can be cut off alone. A server
// that exits unbidden is started again after 250 ms, as a supervisor
// would: after kill -9 its worker-ID range stays full until the dead
// process's lease expires, and the restarts find that out.
//
// The servers run with short leases (TTL 2s, margin 500ms, etcd timeout
// 300ms) so that faults play out in seconds, and the default watermark
// window (10s): with a window shorter than the lease a cut-off server
// runs out of watermark before its lease can expire, and no partition
// would ever test the self-fencing deadline.
//
// # The load and the checker
//
// ID clients: two prefer each server slot and fail over to the next ones
// in turn when it does not answer (or answers unavailable), coming back
// to it at the next request, so every server, a restarted one included,
// is asked all the time; two more use migclient.Client's own failover. Sequence
// clients: two per datacenter, on migclient.Client over that datacenter's
// servers (which routes each uid to the node that serves it), over 24
// uids a datacenter, each in a group of sections of its own so that the
// sequences spread over every node, few enough that every uid's history is
// long.
//
// The checker keys the ID order by datacenter and worker ID, not by
// process: whoever holds a worker ID, after a restart or a takeover, must
// continue above every ID handed out under it before, in real time. A
// late self-fence breaks exactly that.
//
// # Faults in a running server
//
// A fault-injection build of mig (cmd/mig/faultinject.go) has two more
// serve flags: --fault-clock-file, a file holding an offset the server
// adds to its wall clock, re-read every 100 ms (how the clock scenarios
// step a live server's clock), and --fault-clock-rate, which slows the
// server's monotonic clock: below about 0.75 its self-fencing deadline
// comes after etcd has expired its lease, a deliberately broken build
// (Config.BrokenFence) that the partition scenario must fail. Production
// builds have neither flag.
//
// # Time
//
// The runner reads time only through a clock.Source (Config.Clock).
package scenario
