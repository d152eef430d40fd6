package rpc

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twitchtv/twirp"
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
// work around them. A request that is not plainly protobuf of an allowed
// size, or whose body does not decode, is declined and goes to Handler,
// which answers it as Twirp does; so does every request over JSON. A
// method's error is written with twirp.WriteError after twirpError, the
// one place errors become codes, and counted like Handler's.
func (s *Server) FastHandlers() map[string]h1.FastHandler {
	return s.fast
}

// fastRoutes builds FastHandlers' map.
func (s *Server) fastRoutes(ids *idService, seqs *seqService, maxBody int64) map[string]h1.FastHandler {
	route := func(prefix, method string) *fastMethod {
		m := &fastMethod{metrics: s.metrics, maxBody: maxBody, service: serviceName(prefix), method: method}
		m.ok = s.metrics.requests.WithLabelValues(m.service, method, codeOK)
		m.latency = s.metrics.latency.WithLabelValues(m.service, method)
		return m
	}
	const idp, seqp = migv1.IDServicePathPrefix, migv1.SeqServicePathPrefix
	r := map[string]h1.FastHandler{
		idp + "NextIDs": serveFast(route(idp, "NextIDs"), ids.NextIDs),
	}
	if seqs != nil {
		r[seqp+"NextSeq"] = serveFast(route(seqp, "NextSeq"), seqs.NextSeq)
		r[seqp+"NextSeqs"] = serveFast(route(seqp, "NextSeqs"), seqs.NextSeqs)
		r[seqp+"CurSeq"] = serveFast(route(seqp, "CurSeq"), seqs.CurSeq)
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
	metrics         *metrics
	maxBody         int64
	service, method string
	ok              prometheus.Counter
	latency         prometheus.Observer
}

// message is a generated request or response type: a pointer to a struct.
type message[T any] interface {
	*T
	proto.Message
}

// serveFast answers one method of the generated interface, call, over
// protobuf.
func serveFast[Req any, Resp proto.Message, PReq message[Req]](m *fastMethod, call func(context.Context, PReq) (Resp, error)) h1.FastHandler {
	return func(w *h1.ResponseWriter, r *h1.FastRequest) bool {
		if string(r.ContentType) != contentTypeProtobuf || int64(len(r.Body)) > m.maxBody {
			return false
		}
		start := m.metrics.src.Mono()
		req := PReq(new(Req))
		if err := proto.Unmarshal(r.Body, req); err != nil {
			return false // Handler answers malformed and counts it
		}
		resp, err := call(r.Context, req)
		if err == nil {
			var b []byte
			b, err = proto.MarshalOptions{}.MarshalAppend(w.AvailableBuffer(), resp)
			if err == nil {
				w.SetContentType(contentTypeProtobuf)
				w.Write(b)
				m.done(codeOK, start)
				return true
			}
		}
		twerr := twirpError(err)
		m.metrics.logInternal(m.method, twerr)
		twirp.WriteError(w, twerr) // into a buffer: it cannot fail
		m.done(string(twerr.Code()), start)
		return true
	}
}

// done counts an answered request as the hooks do for Handler.
func (m *fastMethod) done(code string, start time.Duration) {
	if code == codeOK {
		m.ok.Inc()
	} else {
		m.metrics.requests.WithLabelValues(m.service, m.method, code).Inc()
	}
	m.latency.Observe((m.metrics.src.Mono() - start).Seconds())
}
