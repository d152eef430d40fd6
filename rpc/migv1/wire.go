package migv1

// Constants of the protocol that mig.proto cannot carry: Twirp error
// metadata keys and limits. The server (package rpc) writes them and the
// Go client (package rpc/migclient) reads them, both from here, so the two
// cannot drift apart; this file is written by hand, the .pb.go and
// .twirp.go beside it are generated.

// Twirp error metadata keys.
const (
	// MetaRetryable is set to "true" on an error another node may not
	// have: the request did nothing here and may be sent elsewhere (or
	// here again, a little later).
	MetaRetryable = "retryable"
	// MetaRouting, on a failed_precondition answer to a request for a uid
	// another node serves, holds the current routing table as protobuf
	// JSON with the .proto's field names (a Routing message).
	MetaRouting = "routing"
	// MetaAddress, beside MetaRouting, holds the host:port of the node
	// that serves the uid.
	MetaAddress = "address"
	// MetaDatacenter, on a failed_precondition answer for a uid another
	// datacenter's own sequence store serves, names that datacenter.
	MetaDatacenter = "datacenter"
)

// MaxCount is the most IDs one NextIDs call may ask for
// (NextIDsRequest.count).
const MaxCount = 100_000
