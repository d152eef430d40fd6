package migclient

import (
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade/route"
)

// routingFromProto converts a table from an answer, refusing one whose
// routes do not cover its groups exactly once. (The server converts the
// other way, in package rpc; route.Table is the one definition of the
// table and of the uid-to-owner lookup both use.)
func routingFromProto(p *migv1.Routing) (route.Table, error) {
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
