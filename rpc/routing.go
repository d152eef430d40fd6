package rpc

import (
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade/route"
)

// routingToProto converts a node's routing table for the wire; nil for no
// table.
func routingToProto(r route.Table) *migv1.Routing {
	if r.Version == 0 {
		return nil
	}
	p := &migv1.Routing{
		Version:     r.Version,
		SectionSize: r.SectionSize,
		GroupSize:   uint32(r.GroupSize),
		Groups:      uint32(r.Groups),
		Routes:      make([]*migv1.Route, len(r.Routes)),
	}
	for i, rr := range r.Routes {
		p.Routes[i] = &migv1.Route{FirstGroup: uint32(rr.First), LastGroup: uint32(rr.Last), Node: rr.Node, Address: rr.Address}
	}
	return p
}

// routingJSON is how a table is written as JSON wherever it appears: the
// field names of the .proto, as Twirp writes answers.
var routingJSON = protojson.MarshalOptions{UseProtoNames: true}

// routingMeta is r as the migv1.MetaRouting value: the same JSON as the
// routing field of an answer.
func routingMeta(r route.Table) string {
	p := routingToProto(r)
	if p == nil {
		return ""
	}
	b, err := routingJSON.Marshal(p)
	if err != nil {
		return ""
	}
	return string(b)
}
