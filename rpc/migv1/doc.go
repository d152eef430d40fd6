// Package migv1 is mig.v1, the MIG wire protocol: mig.proto, the protobuf
// and Twirp code generated from it, and, in wire.go, the constants both
// ends share that a .proto cannot carry (error metadata keys, limits).
// Do not edit the generated files; change mig.proto and run
// go generate ./rpc/migv1.
package migv1
