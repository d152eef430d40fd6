package rpc

import (
	"context"

	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/rpc/migv1"
)

// contentTypeProtobuf is Twirp's protobuf content type.
const contentTypeProtobuf = "application/protobuf"

// FastHandlers returns, for internal/h1's Server.Fast, the server's hot
// Twirp methods over protobuf, answered without net/http's request
// machinery: NextIDs, and NextSeq, NextSeqs and CurSeq with WithSeq.
//
// They are the same methods Handler serves, on the same service values,
// and their answers are byte for byte the same: what differs is only the
// work around them. They share with Handler what decides and records a
// request: the body limit (bodyLimit.admit), the translation of errors
// (twirpError, written with twirp.WriteError) and the accounting
// (methodMetrics.done). A request that is not plainly protobuf, or whose
// body does not decode, is declined and goes to Handler, which answers it
// as Twirp does; so does every request over JSON.
func (s *Server) FastHandlers() map[string]h1.FastHandler {
	return s.fast
}

// fastRoutes builds FastHandlers' map.
func (s *Server) fastRoutes(ids *idService, seqs *seqService, limit bodyLimit) map[string]h1.FastHandler {
	slot := 0
	route := func(prefix, method string) *fastMethod {
		m := &fastMethod{metrics: s.metrics.method(serviceName(prefix), method), limit: limit, slot: slot}
		slot++
		return m
	}
	const idp, seqp = migv1.IDServicePathPrefix, migv1.SeqServicePathPrefix
	r := map[string]h1.FastHandler{
		idp + "NextIDs": serveFast(route(idp, "NextIDs"), decodeNextIDs, keepIDs, ids.nextIDs),
	}
	if seqs != nil {
		r[seqp+"NextSeq"] = serveFast(route(seqp, "NextSeq"), unmarshal, proto.Reset, seqs.nextSeq)
		r[seqp+"NextSeqs"] = serveFast(route(seqp, "NextSeqs"), unmarshal, proto.Reset, seqs.nextSeqs)
		r[seqp+"CurSeq"] = serveFast(route(seqp, "CurSeq"), unmarshal, proto.Reset, seqs.curSeq)
	}
	return r
}

// serviceName is the Twirp service name of a path prefix such as
// "/twirp/mig.v1.IDService/": "IDService", the label Handler's hooks use.
func serviceName(prefix string) string {
	name := prefix[:len(prefix)-1]
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			return name[i+1:]
		}
	}
	return name
}

// fastMethod is one method's fast route and its metrics, resolved once.
type fastMethod struct {
	metrics *methodMetrics
	limit   bodyLimit
	slot    int // in connCalls
}

// connCalls is what the fast routes keep in a connection's
// FastRequest.Local: each route's messages from its last request on the
// connection, at the route's slot.
type connCalls [4]any

// message is a generated request or response type: a pointer to a struct.
type message[T any] interface {
	*T
	proto.Message
}

// reusedCall is a route's request and response, reused by the next
// request of the same connection.
type reusedCall[Req, Resp any] struct {
	req  Req
	resp Resp
}

// reuse returns the messages m's last request on the connection left in
// local, or new ones, kept there for the next request.
func reuse[Req, Resp any](m *fastMethod, local *any) *reusedCall[Req, Resp] {
	if local == nil {
		return new(reusedCall[Req, Resp])
	}
	calls, _ := (*local).(*connCalls)
	if calls == nil {
		calls = new(connCalls)
		*local = calls
	}
	c, _ := calls[m.slot].(*reusedCall[Req, Resp])
	if c == nil {
		c = new(reusedCall[Req, Resp])
		calls[m.slot] = c
	}
	return c
}

// serveFast answers one method over protobuf: decode fills the request
// (or fails, and Handler answers), reset empties the response from the
// last use, and fill answers. The messages are the connection's, reused
// from one request to the next, so that the hot methods allocate nothing:
// under load, a few hundred bytes a request ran the collector several
// times a second, and each of its cycles left a burst of late answers
// behind it (docs/benchmarks.md has the figures).
//
// HAZARD: the messages outlive the request. Nothing may keep the request,
// the response, or a slice of either past the handler's return; the
// answer is encoded into the connection's buffer before that.
func serveFast[Req, Resp any, PReq message[Req], PResp message[Resp]](m *fastMethod,
	decode func([]byte, PReq) error, reset func(proto.Message),
	fill func(context.Context, PReq, PResp) error) h1.FastHandler {
	return func(w *h1.ResponseWriter, r *h1.FastRequest) bool {
		if string(r.ContentType) != contentTypeProtobuf {
			return false
		}
		start := m.metrics.m.src.Mono()
		err := m.limit.admit(int64(len(r.Body)))
		if err == nil {
			c := reuse[Req, Resp](m, r.Local)
			req, resp := PReq(&c.req), PResp(&c.resp)
			if err := decode(r.Body, req); err != nil {
				return false // Handler answers malformed, in Twirp's words, and counts it
			}
			reset(resp)
			err = fill(r.Context, req, resp)
			if err == nil {
				err = m.write(w, resp)
			}
		}
		if err != nil {
			twerr := twirpError(err)
			m.metrics.m.logInternal(m.metrics.method, twerr)
			twirp.WriteError(w, twerr) // into a buffer: it cannot fail
			m.metrics.done(string(twerr.Code()), start)
			return true
		}
		m.metrics.done(codeOK, start)
		return true
	}
}

// write encodes resp into w's buffer as the answer.
func (m *fastMethod) write(w *h1.ResponseWriter, resp proto.Message) error {
	b, err := proto.MarshalOptions{}.MarshalAppend(w.AvailableBuffer(), resp)
	if err != nil {
		return err
	}
	w.SetContentType(contentTypeProtobuf)
	w.Write(b)
	return nil
}

// unmarshal is proto.Unmarshal for serveFast.
func unmarshal[P proto.Message](b []byte, m P) error { return proto.Unmarshal(b, m) }

// maxKeptIDs bounds the Ids memory a connection's NextIDs answer keeps: a
// batch of rpc.MaxCount is 800 KB, not worth holding for the next request.
const maxKeptIDs = 1024

// keepIDs empties a NextIDs answer but keeps its Ids' memory, up to
// maxKeptIDs.
func keepIDs(m proto.Message) {
	r := m.(*migv1.NextIDsResponse)
	ids := r.Ids[:0]
	proto.Reset(r)
	if cap(ids) <= maxKeptIDs {
		r.Ids = ids
	}
}

// countField is NextIDsRequest's count, read from the generated
// descriptor so that decodeNextIDs follows the schema.
var countField = (&migv1.NextIDsRequest{}).ProtoReflect().Descriptor().Fields().ByName("count")

// decodeNextIDs decodes a NextIDsRequest as proto.Unmarshal does, without
// allocating the count for the usual body, count alone as a varint: the
// pointer proto.Unmarshal would allocate is the one the reused request
// kept from its last use. Any other body goes to proto.Unmarshal.
func decodeNextIDs(b []byte, req *migv1.NextIDsRequest) error {
	own := req.Count // only this request points here: see below
	req.Count = nil
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || num != countField.Number() || typ != protowire.VarintType {
			return proto.Unmarshal(b, req) // resets req: a new Count if any
		}
		v, k := protowire.ConsumeVarint(rest[n:])
		if k < 0 {
			return proto.Unmarshal(b, req)
		}
		if own == nil {
			own = new(int32)
		}
		*own = int32(v) // the last occurrence wins, as in proto.Unmarshal
		req.Count = own
		rest = rest[n+k:]
	}
	if m := req.ProtoReflect(); len(m.GetUnknown()) > 0 {
		m.SetUnknown(nil) // left by an earlier body that went to proto.Unmarshal
	}
	return nil
}
