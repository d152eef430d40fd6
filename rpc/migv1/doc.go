// Package migv1 is the generated protobuf and Twirp code of mig.v1, the
// MIG wire protocol defined in ../mig.proto. Do not edit the generated
// files; change mig.proto and run go generate ./rpc.
package migv1
