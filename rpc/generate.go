package rpc

// The generated code in migv1 is committed: building and CI need only Go.
// Regenerating needs protoc (Debian's protobuf-compiler will do); the two
// plugins are this module's tools, pinned in go.mod, and go tool -n builds
// them and prints their paths.
//
//go:generate sh -c "protoc --plugin=protoc-gen-go=$(go tool -n protoc-gen-go) --plugin=protoc-gen-twirp=$(go tool -n protoc-gen-twirp) --go_out=migv1 --go_opt=paths=source_relative --twirp_out=migv1 --twirp_opt=paths=source_relative mig.proto"
