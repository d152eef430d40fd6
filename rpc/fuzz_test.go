package rpc_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/internal/h1"
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
		{false, 1, []byte(`{"cnt":3}`)},
		{false, 1, []byte(`{"count":"abc"}`)},
		{false, 1, []byte(`{"count":1,"count":2}`)},
		{false, 1, []byte(`{"count":1} x`)},
		{false, 1, []byte("{\"count\":\"\xff\"}")},
		{true, 1, []byte(`{}`)},
		{true, 1, []byte(`{"id":"-1"}`)},
		{true, 1, []byte(`{"id":"0"}`)},
		{true, 0, nil},
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
		contentType := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		last = checkAnswer(t, decode, last, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())

		// The fast route, where there is one, answers alike or declines.
		fast := s.FastHandlers()[path]
		if fast == nil {
			return
		}
		var w h1.ResponseWriter
		if !fast(&w, &h1.FastRequest{Context: t.Context(), ContentType: []byte(contentType), Body: body}) {
			return
		}
		if w.Status() != rec.Code {
			t.Fatalf("fast route answered %d, Handler %d", w.Status(), rec.Code)
		}
		if rec.Code != http.StatusOK && !bytes.Equal(w.Body(), rec.Body.Bytes()) {
			t.Fatalf("fast route's error %q, Handler's %q", w.Body(), rec.Body.Bytes())
		}
		last = checkAnswer(t, decode, last, w.Status(), w.ContentType(), w.Body())
	})
}

// checkAnswer checks one answer of FuzzHandler: 200 or a well-formed Twirp
// error other than internal, in the style checkMessage checks; a NextIDs
// answer's IDs above last. It returns the new last.
func checkAnswer(t *testing.T, decode bool, last mig.ID, status int, contentType string, body []byte) mig.ID {
	t.Helper()
	if status != http.StatusOK {
		e := parseTwirpError(t, status, body)
		if e.Code == string(twirp.Internal) {
			t.Fatalf("bad input caused an internal error: %+v", e)
		}
		checkMessage(t, e)
		return last
	}
	if decode {
		return last
	}
	var resp migv1.NextIDsResponse
	var uerr error
	if strings.Contains(contentType, "json") {
		uerr = protojson.Unmarshal(body, &resp)
	} else {
		uerr = proto.Unmarshal(body, &resp)
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
	return last
}
