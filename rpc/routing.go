package rpc

import (
	"sort"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
)

// Meta keys of a failed_precondition answer to a request for a uid
// another node serves.
const (
	// MetaRouting holds the current routing table, as protobuf JSON.
	MetaRouting = "routing"
	// MetaAddress holds the address of the node that serves the uid.
	MetaAddress = "address"
)

// routingToProto converts a node's routing table for the wire; nil for no
// table.
func routingToProto(r seqfacade.Routing) *migv1.Routing {
	if r.Version == 0 {
		return nil
	}
	p := &migv1.Routing{
		Version:     r.Version,
		SectionSize: r.SectionSize,
		GroupSize:   uint32(r.GroupSize),
		Groups:      uint32(r.Groups),
		Routes:      make([]*migv1.Route, len(r.Ranges)),
	}
	for i, rr := range r.Ranges {
		p.Routes[i] = &migv1.Route{FirstGroup: uint32(rr.First), LastGroup: uint32(rr.Last), Node: rr.Owner, Address: r.Addresses[rr.Owner]}
	}
	return p
}

// routingMeta is r as the MetaRouting value.
func routingMeta(r seqfacade.Routing) string {
	p := routingToProto(r)
	if p == nil {
		return ""
	}
	b, err := protojson.Marshal(p)
	if err != nil {
		return ""
	}
	return string(b)
}

// ownerAddress returns the address of the node r gives uid to, or "" when
// r does not say (no table, a uid beyond it, a group nobody serves, an
// owner without an address).
func ownerAddress(r *migv1.Routing, uid uint64) string {
	if r == nil || r.SectionSize == 0 || r.GroupSize == 0 {
		return ""
	}
	g := uid / r.SectionSize / uint64(r.GroupSize)
	if g >= uint64(r.Groups) {
		return ""
	}
	i := sort.Search(len(r.Routes), func(i int) bool { return uint64(r.Routes[i].LastGroup) >= g })
	if i == len(r.Routes) || uint64(r.Routes[i].FirstGroup) > g {
		return ""
	}
	return r.Routes[i].Address
}
