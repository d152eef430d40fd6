package rpc

import (
	"context"
	"errors"
	"net/http"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
)

// Direct handoffs between sequence nodes (seqfacade/handoff.go): the
// node a routing table gave a group asks the node that served it, over
// SeqPeerService, for the release, and serves at once on the answer.

// SeqHandOff is a sequence node that answers its peers' requests for
// releases: *seqfacade.Node. A SeqAllocator that is one gets
// SeqPeerService served beside SeqService.
type SeqHandOff interface {
	HandOff(ctx context.Context, groups []seqfacade.HandOffGroup) ([]seqfacade.HandedOff, error)
}

// peerService serves SeqPeerService from a node.
type peerService struct{ node SeqHandOff }

func (p peerService) HandOff(ctx context.Context, req *migv1.HandOffRequest) (*migv1.HandOffResponse, error) {
	groups := make([]seqfacade.HandOffGroup, len(req.GetGroups()))
	for i, g := range req.GetGroups() {
		groups[i] = seqfacade.HandOffGroup{Group: int(g.GetGroup()), Tenure: tenureFromWire(g.GetTenure())}
	}
	got, err := p.node.HandOff(ctx, groups)
	if err != nil {
		if errors.Is(err, seqfacade.ErrInvalidHandOff) {
			return nil, twirpError(&argError{field: "groups", msg: "groups: " + clientText(err.Error()), cause: err})
		}
		return nil, twirpError(err)
	}
	resp := &migv1.HandOffResponse{Groups: make([]*migv1.HandedOff, len(got))}
	for i, h := range got {
		resp.Groups[i] = &migv1.HandedOff{
			Group:    uint32(h.Group),
			Tenure:   tenureToWire(h.Tenure),
			Released: h.Released,
			Floor:    h.Floor,
			Max:      h.Max,
			Revision: h.Revision,
		}
	}
	return resp, nil
}

func tenureFromWire(t *migv1.Tenure) seqfacade.HandOffTenure {
	return seqfacade.HandOffTenure{Node: t.GetNode(), Registration: t.GetRegistration(), Since: t.GetSince()}
}

func tenureToWire(t seqfacade.HandOffTenure) *migv1.Tenure {
	return &migv1.Tenure{Node: t.Node, Registration: t.Registration, Since: t.Since}
}

// PeerHandOff returns a seqfacade.Config.HandOff that asks the node at an
// address over SeqPeerService, with scheme ("http" or "https") and c (nil:
// a pooled http.Client), in protobuf.
func PeerHandOff(scheme string, c *http.Client) func(ctx context.Context, addr string, groups []seqfacade.HandOffGroup) ([]seqfacade.HandedOff, error) {
	if c == nil {
		c = pooledClient()
	}
	peers := newPeerClients(scheme, c, migv1.NewSeqPeerServiceProtobufClient)
	return func(ctx context.Context, addr string, groups []seqfacade.HandOffGroup) ([]seqfacade.HandedOff, error) {
		req := &migv1.HandOffRequest{Groups: make([]*migv1.HandOffGroup, len(groups))}
		for i, g := range groups {
			req.Groups[i] = &migv1.HandOffGroup{Group: uint32(g.Group), Tenure: tenureToWire(g.Tenure)}
		}
		resp, err := peers.at(addr).HandOff(ctx, req)
		if err != nil {
			return nil, err
		}
		out := make([]seqfacade.HandedOff, len(resp.GetGroups()))
		for i, h := range resp.GetGroups() {
			out[i] = seqfacade.HandedOff{
				Group:    int(h.GetGroup()),
				Tenure:   tenureFromWire(h.GetTenure()),
				Released: h.GetReleased(),
				Floor:    h.GetFloor(),
				Max:      h.GetMax(),
				Revision: h.GetRevision(),
			}
		}
		return out, nil
	}
}

// servePeers mounts SeqPeerService on mux when the allocator answers its
// peers.
func servePeers(mux *http.ServeMux, a SeqAllocator, m *metrics, limit bodyLimit) error {
	h, ok := a.(SeqHandOff)
	if !ok {
		return nil
	}
	srv := migv1.NewSeqPeerServiceServer(peerService{node: h}, twirp.WithServerHooks(m.hooks(checkBody)))
	return handleChecked(mux, srv, limit, "SeqPeerService")
}
