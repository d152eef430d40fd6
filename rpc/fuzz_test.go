package rpc_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migv1"
)

var fuzzContentTypes = []string{
	"application/protobuf",
	"application/json",
	"application/json; charset=utf-8",
	"APPLICATION/PROTOBUF ; x=y",
	"",
	"text/plain",
	"application/x-www-form-urlencoded",
	";;;\x00\xff",
}

// FuzzHandler posts arbitrary bodies with assorted content types to both
// methods. Whatever arrives, the server must not panic and must answer 200
// or a well-formed Twirp error, and every ID it hands out must be above
// every ID it handed out before in the run.
func FuzzHandler(f *testing.F) {
	countReq := func(n int32) []byte {
		b, err := proto.Marshal(&migv1.NextIDsRequest{Count: proto.Int32(n)})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	for _, seed := range []struct {
		decode bool
		ct     uint8
		body   []byte
	}{
		{false, 0, nil},
		{false, 0, countReq(3)},
		{false, 0, countReq(0)},
		{false, 0, countReq(-7)},
		{false, 0, countReq(rpc.MaxCount)},
		{false, 0, countReq(rpc.MaxCount + 1)},
		{false, 1, []byte(`{"count":5}`)},
		{false, 2, []byte(`{"count":"17"}`)},
		{false, 1, []byte(`{"count":1e3}`)},
		{false, 1, []byte(`{"count":-1}`)},
		{false, 1, []byte(`{"count":2147483648}`)},
		{false, 1, []byte(`{}`)},
		{false, 1, []byte(`{"count":`)},
		{false, 0, []byte{0xff, 0xff}},
		{false, 5, []byte(`{"count":1}`)},
		{true, 0, []byte{0x08, 0x2a}},
		{true, 1, []byte(`{"id":"9223372036854775808"}`)},
		{true, 1, []byte(`{"id":"18446744073709551615"}`)},
		{true, 1, []byte(`{"id":42,"unknown":[1,2]}`)},
		{true, 3, []byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{true, 7, []byte("\x00")},
	} {
		f.Add(seed.decode, seed.ct, seed.body)
	}

	s, err := rpc.NewServer(newRealIssuer(f), rpc.WithMaxBodyBytes(4096))
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	var last mig.ID // the highest ID answered so far in this process

	f.Fuzz(func(t *testing.T, decode bool, ct uint8, body []byte) {
		path := migv1.IDServicePathPrefix + "NextIDs"
		if decode {
			path = migv1.IDServicePathPrefix + "Decode"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code != http.StatusOK {
			var e struct {
				Code string `json:"code"`
				Msg  string `json:"msg"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("status %d with a body that is not a Twirp error: %q", rec.Code, rec.Body.Bytes())
			}
			code := twirp.ErrorCode(e.Code)
			if !twirp.IsValidErrorCode(code) || twirp.ServerHTTPStatusFromErrorCode(code) != rec.Code {
				t.Fatalf("status %d with error %+v", rec.Code, e)
			}
			if code == twirp.Internal {
				t.Fatalf("bad input caused an internal error: %+v", e)
			}
			return
		}
		if decode {
			return
		}
		var resp migv1.NextIDsResponse
		var uerr error
		if strings.Contains(rec.Header().Get("Content-Type"), "json") {
			uerr = protojson.Unmarshal(rec.Body.Bytes(), &resp)
		} else {
			uerr = proto.Unmarshal(rec.Body.Bytes(), &resp)
		}
		if uerr != nil {
			t.Fatalf("undecodable 200 answer: %v", uerr)
		}
		if len(resp.Ids) < 1 || len(resp.Ids) > rpc.MaxCount {
			t.Fatalf("%d IDs in one answer", len(resp.Ids))
		}
		for _, v := range resp.Ids {
			id := mig.ID(v)
			if v>>63 != 0 || id <= last {
				t.Fatalf("ID %d after %d: not unique and increasing", v, last)
			}
			last = id
		}
	})
}
