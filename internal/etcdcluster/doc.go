// Package etcdcluster runs a multi-member etcd cluster inside the current
// process, on loopback, whose members a test or a fault scenario can stop
// like crashed processes and bring back with their data: the harness for
// checking "never twice, never backwards" against the real thing when a
// quorum is lost or a leader dies. Each member is an etcdlocal.Server
// (see package etcdlocal for what shapes those).
//
// It is apart from package etcdlocal so that the production binary, which
// embeds one etcd member through etcdlocal when `mig serve` runs without
// --etcd, links none of it: only tests and the fault-injection build
// (go build -tags faultinject) do.
//
// Members must know each other's URLs before they start, so [Start] picks
// free ports itself (below the kernel's ephemeral range) and keeps them
// across restarts. Stopping a member is immediate, but the end of its
// shutdown takes up to a second in the background; [Cluster.Close] waits
// for it. Tests should use etcdtest.StartCluster, which ties the
// cluster's lifetime to a testing.TB.
package etcdcluster
