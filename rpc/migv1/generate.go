package migv1

// The generated code (mig.pb.go, mig.twirp.go) is committed: building
// needs only Go. Regenerating needs only Go too: buf, at a pinned
// version, is built through the module proxy by go run (outside this
// module's go.mod, so its many dependencies never touch ours), and it
// runs the two plugins, this module's tools pinned in go.mod, as
// buf.gen.yaml says. .ci/run regenerates and fails when the result
// differs from what is committed.
//
//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.50.0 generate
