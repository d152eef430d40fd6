package migv1

import (
	"errors"

	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/migsvc/mig/seqfacade/route"
)

// The routing table on the wire and as route.Table, the one definition
// of the table and of its uid-to-owner lookup that the server, the
// nodes and the Go client share: both directions, and the table a
// refusal carries, are converted here and nowhere else. Hand-written,
// like wire.go.

// NewRouting converts a node's table for the wire; nil for no table
// (version 0).
func NewRouting(t route.Table) *Routing {
	if t.Version == 0 {
		return nil
	}
	p := &Routing{
		Version:     t.Version,
		SectionSize: t.SectionSize,
		GroupSize:   uint32(t.GroupSize),
		Groups:      uint32(t.Groups),
		Routes:      make([]*Route, len(t.Routes)),
	}
	for i, r := range t.Routes {
		p.Routes[i] = &Route{FirstGroup: uint32(r.First), LastGroup: uint32(r.Last), Node: r.Node, Address: r.Address}
	}
	return p
}

// Table converts a table from an answer, refusing one whose routes do
// not cover its groups exactly once.
func (p *Routing) Table() (route.Table, error) {
	t := route.Table{
		Version:     p.GetVersion(),
		SectionSize: p.GetSectionSize(),
		GroupSize:   int(p.GetGroupSize()),
		Groups:      int(p.GetGroups()),
		Routes:      make([]route.Route, len(p.GetRoutes())),
	}
	for i, r := range p.GetRoutes() {
		t.Routes[i] = route.Route{First: int(r.FirstGroup), Last: int(r.LastGroup), Node: r.Node, Address: r.Address}
	}
	return t, t.Check()
}

// routingJSON is how a table is written as JSON wherever it appears: the
// field names of the .proto, as Twirp writes answers.
var routingJSON = protojson.MarshalOptions{UseProtoNames: true}

// RoutingMeta is t as the MetaRouting value of a refusal: the same JSON
// as the routing field of an answer ("" for no table).
func RoutingMeta(t route.Table) string {
	p := NewRouting(t)
	if p == nil {
		return ""
	}
	b, err := routingJSON.Marshal(p)
	if err != nil {
		return ""
	}
	return string(b)
}

// RedirectRouting returns the table a not-owner refusal carries
// (failed_precondition with MetaRouting), or nil for any other error.
func RedirectRouting(err error) *Routing {
	var twerr twirp.Error
	if !errors.As(err, &twerr) || twerr.Code() != twirp.FailedPrecondition || twerr.Meta(MetaRouting) == "" {
		return nil
	}
	r := &Routing{}
	if protojson.Unmarshal([]byte(twerr.Meta(MetaRouting)), r) != nil {
		return nil
	}
	return r
}
