// Command mig is MIG's one binary. Each subcommand is a row of the table in
// main.go with its own file:
//
//	mig serve [flags]                               serve message IDs and sequences as one worker
//	mig status --etcd ENDPOINTS [--json]            show the deployment as etcd holds it
//	mig seq-raise --etcd ENDPOINTS [--to N]         raise every section's max_seq (instead of deleting it)
//	mig decode [--epoch RFC3339] [--json] [ID...]   print the parts of message IDs
//	mig loadtest --target URL[,URL...] [flags]      load servers and check every answer
//	mig version [--json]                            print the version, VCS revision and Go version
//
// Every command also takes --version, and `mig --version` is `mig version`
// (version.go; serve exports the same as mig_build_info).
//
// Serve is split by concern: serve.go (the command and its signals),
// serveflags.go (flags into a checked serveConfig), runserve.go (start-up
// and shutdown order), etcd.go (embedded or external etcd), tls.go,
// and metrics.go (the NTP check is the worker's: workerid.Config.ClockCheck).
// The operator commands, status (status.go) and seq-raise (seqraise.go),
// share their etcd flags (opsetcd.go) and read mig's keys with structs of
// their own (deployment.go), not with the domain packages' internals: a
// change of format there fails their tests here.
//
// Tests run serve in-process through runServe, cancelling its context
// where a signal would stop the process, and also as a built binary
// stopped with a real SIGTERM.
//
// `mig loadtest --scenario NAME` (scenario.go) runs a fault scenario of
// package loadtest/scenario instead of loading given targets. Only a
// fault-injection build, `go build -tags faultinject`, has it and links
// its harness (loadtest/scenario, internal/faultproxy,
// internal/etcdcluster); the scenario's servers run the same build, whose
// serve command has --fault-* flags (faultinject.go; runServe's faultClock
// and serve.go's withFaultFlags are its two hooks). Production builds
// (faultinject_off.go, scenario_off.go) have no such flags, refuse them,
// and answer --scenario by naming the build that runs it.
//
// Every flag can also be set from an environment variable named MIG_ and the
// flag's name in capitals with dashes as underscores (--data-dir is
// MIG_DATA_DIR); a flag given on the command line wins.
//
// Exit status: 0 on success, 1 when the command failed or some input was bad,
// 2 for a usage error (unknown command, bad flag or flag value).
package main
