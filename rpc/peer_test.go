package rpc_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/seqfacade"
)

// TestPeerHandOff: SeqPeerService over a real node, through the client
// mig serve gives its sequence node. A tenure that is not the node's is
// answered not released, at once; a request naming no group, a group out
// of range, or one twice is invalid_argument naming the groups, in
// protobuf and JSON; nothing the node serves changes.
func TestPeerHandOff(t *testing.T) {
	url, node := serveSeq(t)
	addr := strings.TrimPrefix(url, "http://")
	ask := rpc.PeerHandOff("http", nil)
	before, err := node.Next(t.Context(), 5)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	other := seqfacade.HandOffTenure{Node: "someone-else", Registration: 3, Since: 2}
	got, err := ask(ctx, addr, []seqfacade.HandOffGroup{{Group: 0, Tenure: other}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Group != 0 || got[0].Tenure != other || got[0].Released || got[0].Floor != nil {
		t.Fatalf("a tenure of another node: %+v", got)
	}

	for _, tc := range []struct {
		name string
		req  []seqfacade.HandOffGroup
	}{
		{"no group", nil},
		{"out of range", []seqfacade.HandOffGroup{{Group: 1 << 20, Tenure: other}}},
		{"twice", []seqfacade.HandOffGroup{{Group: 1, Tenure: other}, {Group: 1, Tenure: other}}},
	} {
		_, err := ask(ctx, addr, tc.req)
		if tw := twirpErr(t, err); tw.Code() != twirp.InvalidArgument || tw.Meta("argument") != "groups" || strings.Contains(tw.Msg(), "seqfacade") {
			t.Errorf("%s: %v (meta %v)", tc.name, tw, tw.MetaMap())
		}
	}
	status, body := post(t, url+"/twirp/mig.v1.SeqPeerService/HandOff", "application/json", []byte(`{"groups":[]}`))
	if e := parseTwirpError(t, status, body); status != http.StatusBadRequest || e.Code != string(twirp.InvalidArgument) {
		t.Errorf("JSON with no group: %d %s", status, body)
	}
	after, err := node.Next(t.Context(), 5)
	if err != nil || after != before+1 {
		t.Fatalf("uid 5 after the handoff requests: %d, %v; want %d", after, err, before+1)
	}
}

// FuzzPeerHandOff posts arbitrary bodies to SeqPeerService.HandOff on a
// server over a real sequence node: every answer is 200 or a Twirp error
// other than internal, worded for a client, and the node's sequences go
// on above every value before (a request for a release never makes the
// node hand anything out again, or stop serving what it owns).
func FuzzPeerHandOff(f *testing.F) {
	for _, seed := range []struct {
		ct   uint8
		body []byte
	}{
		{1, []byte(`{"groups":[{"group":0,"tenure":{"node":"n1","registration":"1","since":"1"}}]}`)},
		{1, []byte(`{"groups":[{"group":4294967295}]}`)},
		{1, []byte(`{"groups":[{"group":1},{"group":1}]}`)},
		{1, []byte(`{"groups":"x"}`)},
		{1, []byte(`{}`)},
		{0, []byte{0x0a, 0x02, 0x08, 0x03}},
		{0, []byte{0x0a, 0xff}},
	} {
		f.Add(seed.ct, seed.body)
	}
	_, node, s := serveSeqHandler(f)
	h := s.Handler()
	var mu sync.Mutex
	var last uint64
	f.Fuzz(func(t *testing.T, ct uint8, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/twirp/mig.v1.SeqPeerService/HandOff", bytes.NewReader(body))
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			req.Header.Set("Content-Type", c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			e := parseTwirpError(t, rec.Code, rec.Body.Bytes())
			if e.Code == string(twirp.Internal) {
				t.Fatalf("%q: internal error %+v", body, e)
			}
			checkMessage(t, e)
		}
		mu.Lock()
		defer mu.Unlock()
		v, err := node.Next(t.Context(), 5)
		if err != nil {
			t.Fatalf("after %q: %v", body, err)
		}
		if v <= last {
			t.Fatalf("after %q: uid 5 at %d after %d", body, v, last)
		}
		last = v
	})
}
