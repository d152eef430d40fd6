package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/h1"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
)

// serveSeq runs a server whose SeqService is a real sequence node on an
// embedded etcd, and returns its URL and the node.
func serveSeq(t testing.TB) (string, *seqfacade.Node) {
	url, node, _ := serveSeqHandler(t)
	return url, node
}

// serveSeqHandler is serveSeq that also returns the server, whose
// handlers the caller may call in-process.
func serveSeqHandler(t testing.TB) (string, *seqfacade.Node, *rpc.Server) {
	t.Helper()
	return serveSeqDelayed(t, 500*time.Millisecond)
}

// serveSeqDelayed is serveSeqHandler with the node's activation delay:
// the node confirms every quarter of it (a write to the embedded etcd).
func serveSeqDelayed(t testing.TB, delay time.Duration) (string, *seqfacade.Node, *rpc.Server) {
	t.Helper()
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	node, err := seqfacade.Start(t.Context(), seqfacade.Config{
		NodeName:        "n1",
		Step:            100,
		Lease:           lease.Config{TTL: 2 * time.Second, RequestTimeout: 200 * time.Millisecond},
		Margin:          delay / 5,
		ActivationDelay: delay,
	}, cli, clock.NewReal())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close(context.WithoutCancel(t.Context())) })
	src := clock.NewReal()
	// Serving, and every group loaded: the background loads (writes to
	// the embedded etcd, in this process) are over before a test counts
	// allocations.
	settled := func() bool {
		st := node.Stats()
		return node.Ready() == nil && st.GroupsOwned > 0 && st.GroupsLoaded == int64(st.GroupsOwned)
	}
	for end := src.Mono() + 20*time.Second; !settled(); {
		if src.Mono() > end {
			t.Fatalf("sequence node not serving every group after 20s: %+v", node.Stats())
		}
		<-src.After(5 * time.Millisecond)
	}
	s, hs := serve(t, newIssuer(t), rpc.WithSeq(node, 0))
	return hs.URL, node, s
}

// FuzzSeqHandler posts arbitrary bodies with assorted content types to the
// three SeqService methods of a server over a real sequence node. The
// server must answer 200 or a Twirp error other than internal, and every
// sequence it hands out for a uid must be above every one before. The
// fast route of the method answers the same body alike, or declines.
func FuzzSeqHandler(f *testing.F) {
	for _, seed := range []struct {
		method uint8
		ct     uint8
		body   []byte
	}{
		{0, 0, []byte{0x08, 0x05}},
		{0, 1, []byte(`{"uid":"5"}`)},
		{0, 1, []byte(`{"uid":0}`)},
		{0, 1, []byte(`{"uid":"18446744073709551615"}`)},
		{1, 1, []byte(`{"uids":["1","2","3"]}`)},
		{1, 1, []byte(`{"uids":["1","1"]}`)},
		{1, 1, []byte(`{"uids":[]}`)},
		{1, 0, []byte{0x0a, 0x02, 0x01, 0x02}},
		{2, 1, []byte(`{"uid":"5"}`)},
		{2, 0, []byte{0xff}},
		{0, 5, []byte(`{"uid":1}`)},
		{0, 1, []byte(`{"uid":"-1"}`)},
		{0, 1, []byte(`{"uid":"5","want_routing":"yes"}`)},
		{0, 1, []byte(`{"uid":"5","wantRouting":true,"want_routing":false}`)},
		{1, 1, []byte(`{"uids":["1","x"]}`)},
		{1, 1, []byte(`{"uid":"1"}`)},
		{1, 0, []byte{0x0a, 0x01, 0x00}},
		{2, 1, []byte(`{"uid":"4294967296"}`)},
		{2, 1, []byte(`{"uid":"5","forwarded_by":7}`)},
	} {
		f.Add(seed.method, seed.ct, seed.body)
	}
	_, _, s := serveSeqHandler(f)
	h := s.Handler()
	methods := []string{"NextSeq", "NextSeqs", "CurSeq"}
	var mu sync.Mutex
	last := map[uint64]uint64{}
	f.Fuzz(func(t *testing.T, method, ct uint8, body []byte) {
		m := methods[int(method)%len(methods)]
		path := "/twirp/mig.v1.SeqService/" + m
		contentType := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		status, out := rec.Code, rec.Body.Bytes()
		var fast h1.ResponseWriter
		if s.FastHandlers()[path](&fast, &h1.FastRequest{Context: t.Context(), ContentType: []byte(contentType), Body: body}) {
			// The node may turn unavailable between the two calls (a lease
			// renewal late on a loaded machine): only answers of the same
			// moment compare.
			unavailable := fast.Status() == http.StatusServiceUnavailable || status == http.StatusServiceUnavailable
			if !unavailable && (fast.Status() != status || status != http.StatusOK && !bytes.Equal(fast.Body(), out)) {
				t.Fatalf("%s %q: fast route answered %d %q, Handler %d %q", m, body, fast.Status(), fast.Body(), status, out)
			}
			if status == http.StatusOK && m != "CurSeq" {
				mu.Lock()
				checkProtoSeqs(t, m, body, fast.Body(), last)
				mu.Unlock()
			}
		}
		if status != http.StatusOK {
			e := parseTwirpError(t, status, out)
			if e.Code == string(twirp.Internal) {
				t.Fatalf("%s %q: internal error %+v", m, body, e)
			}
			checkMessage(t, e)
			return
		}
		var in struct {
			Uid  uint64   `json:"uid,string"`
			Uids []string `json:"uids"`
		}
		var resp struct {
			Seq  uint64   `json:"seq,string"`
			Seqs []string `json:"seqs"`
		}
		if m == "CurSeq" || !strings.Contains(req.Header.Get("Content-Type"), "json") {
			return // protobuf bodies: the handler's own tests check values
		}
		if json.Unmarshal(body, &in) != nil || json.Unmarshal(out, &resp) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		check := func(uid, v uint64) {
			if v <= last[uid] {
				t.Fatalf("uid %d: %d after %d", uid, v, last[uid])
			}
			last[uid] = v
		}
		if m == "NextSeq" {
			check(in.Uid, resp.Seq)
			return
		}
		for i, u := range in.Uids {
			uid, _ := strconv.ParseUint(u, 10, 64)
			v, _ := strconv.ParseUint(resp.Seqs[i], 10, 64)
			check(uid, v)
		}
	})
}

func TestSeqServiceProtobufAndJSON(t *testing.T) {
	url, _ := serveSeq(t)
	for _, json := range []bool{false, true} {
		var opts []migclient.Option
		if json {
			opts = append(opts, migclient.WithJSON())
		}
		c := newClient(t, []string{url}, opts...)
		uid := uint64(42)
		if json {
			uid = 43
		}
		var prev uint64
		for range 250 { // crosses two steps of 100
			v, err := c.NextSeq(t.Context(), uid)
			if err != nil {
				t.Fatal(err)
			}
			if v <= prev {
				t.Fatalf("json=%v: seq %d after %d", json, v, prev)
			}
			prev = v
		}
		cur, err := c.CurSeq(t.Context(), uid)
		if err != nil || cur != prev {
			t.Fatalf("CurSeq = %d, %v; want %d", cur, err, prev)
		}
		vs, err := c.NextSeqs(t.Context(), []uint64{uid, 7, 100_001})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 3 || vs[0] != prev+1 {
			t.Fatalf("NextSeqs = %v, want %d first", vs, prev+1)
		}
	}
}

func TestSeqServiceJSONCarriesSeqsAsStrings(t *testing.T) {
	url, _ := serveSeq(t)
	status, body := post(t, url+"/twirp/mig.v1.SeqService/NextSeqs", "application/json", []byte(`{"uids":["5","4294967295"]}`))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if !strings.Contains(string(body), `"seqs":["`) {
		t.Fatalf("sequences not JSON strings: %s", body)
	}
}

func TestSeqServiceBadInputConsumesNothing(t *testing.T) {
	url, node := serveSeq(t)
	c := newClient(t, []string{url})
	before, err := c.NextSeq(t.Context(), 9)
	if err != nil {
		t.Fatal(err)
	}
	tooMany := make([]uint64, node.Config().MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = uint64(i + 1)
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		words []string
	}{
		{"uid 0", func() error { _, err := c.NextSeq(t.Context(), 0); return err }, []string{"0"}},
		{"uid at the limit", func() error { _, err := c.NextSeq(t.Context(), 1<<32); return err }, []string{"4294967296"}},
		{"cur of uid 0", func() error { _, err := c.CurSeq(t.Context(), 0); return err }, []string{"0"}},
		{"repeated uid", func() error { _, err := c.NextSeqs(t.Context(), []uint64{9, 8, 9}); return err }, []string{"9"}},
		{"bad uid in batch", func() error { _, err := c.NextSeqs(t.Context(), []uint64{9, 0}); return err }, []string{"uids[1]"}},
		{"too many uids", func() error { _, err := c.NextSeqs(t.Context(), tooMany); return err }, []string{"1000"}},
		{"no uids", func() error { _, err := c.NextSeqs(t.Context(), nil); return err }, []string{"empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if te := twirpErr(t, err); te.Code() != twirp.InvalidArgument {
				t.Fatalf("%v: code %s, want invalid_argument", err, te.Code())
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
		})
	}
	after, err := c.NextSeq(t.Context(), 9)
	if err != nil || after != before+1 {
		t.Fatalf("after bad input uid 9 moved from %d to %d (%v)", before, after, err)
	}
}

func TestSeqServiceUnavailableIsRetryable(t *testing.T) {
	url, node := serveSeq(t)
	c := newClient(t, []string{url})
	if _, err := c.NextSeq(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if err := node.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := c.NextSeq(t.Context(), 1)
	te := twirpErr(t, err)
	if te.Code() != twirp.Unavailable || te.Meta(migv1.MetaRetryable) != "true" {
		t.Fatalf("closed node: %v (code %s)", err, te.Code())
	}
}

// TestSeqServiceConcurrentCallersOneUid: many clients on one uid get
// unique values, increasing per caller, over real HTTP.
func TestSeqServiceConcurrentCallersOneUid(t *testing.T) {
	url, _ := serveSeq(t)
	c := newClient(t, []string{url})
	const callers, each = 8, 200
	got := make([][]uint64, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			for range each {
				v, err := c.NextSeq(t.Context(), 77)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], v)
			}
		})
	}
	wg.Wait()
	var all []uint64
	for i, vs := range got {
		if !slices.IsSorted(vs) {
			t.Fatalf("caller %d's values not increasing", i)
		}
		all = append(all, vs...)
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != callers*each {
		t.Fatal("a value was handed out twice")
	}
}

func TestWithSeqRejectsBadArguments(t *testing.T) {
	for _, opt := range []rpc.ServerOption{rpc.WithSeq(nil, 0), rpc.WithSeq(&seqfacade.Node{}, -time.Second)} {
		if _, err := rpc.NewServer(newIssuer(t), opt); !errors.Is(err, rpc.ErrConfig) {
			t.Fatalf("NewServer = %v, want ErrConfig", err)
		}
	}
}

// checkProtoSeqs checks that a protobuf NextSeq or NextSeqs answer gives
// every uid asked for a value above its last, and records them.
func checkProtoSeqs(t *testing.T, method string, reqBody, respBody []byte, last map[uint64]uint64) {
	t.Helper()
	var uids, seqs []uint64
	if method == "NextSeq" {
		var req migv1.NextSeqRequest
		var resp migv1.NextSeqResponse
		if proto.Unmarshal(reqBody, &req) != nil || proto.Unmarshal(respBody, &resp) != nil {
			t.Fatalf("%s: undecodable request %q or answer %q", method, reqBody, respBody)
		}
		uids, seqs = []uint64{req.Uid}, []uint64{resp.Seq}
	} else {
		var req migv1.NextSeqsRequest
		var resp migv1.NextSeqsResponse
		if proto.Unmarshal(reqBody, &req) != nil || proto.Unmarshal(respBody, &resp) != nil {
			t.Fatalf("%s: undecodable request %q or answer %q", method, reqBody, respBody)
		}
		uids, seqs = req.Uids, resp.Seqs
	}
	if len(seqs) != len(uids) {
		t.Fatalf("%s: %d values for %d uids", method, len(seqs), len(uids))
	}
	for i, uid := range uids {
		if seqs[i] <= last[uid] {
			t.Fatalf("uid %d: %d after %d", uid, seqs[i], last[uid])
		}
		last[uid] = seqs[i]
	}
}

// TestSeqServiceErrors: refusals of SeqService name the field, the value
// and the limit, in JSON and protobuf alike, and consume nothing.
func TestSeqServiceErrors(t *testing.T) {
	url, node := serveSeq(t)
	c := newClient(t, []string{url})
	before, err := c.NextSeq(t.Context(), 9)
	if err != nil {
		t.Fatal(err)
	}
	limit := node.Config().UIDLimit
	const seqp = "/twirp/mig.v1.SeqService/"
	pb := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tooMany := make([]uint64, node.Config().MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = uint64(i + 1)
	}
	for _, tc := range []struct {
		name, method, contentType string
		body                      []byte
		code                      twirp.ErrorCode
		arg, msg                  string
	}{
		{"uid negative", "NextSeq", "application/json", []byte(`{"uid":"-1"}`), twirp.InvalidArgument, "uid", `uid: "-1" is not an unsigned integer`},
		{"uid a word", "CurSeq", "application/json", []byte(`{"uid":"abc"}`), twirp.InvalidArgument, "uid", `uid: "abc" is not an unsigned integer`},
		{"uid misspelt", "NextSeq", "application/json", []byte(`{"user":"9"}`), twirp.InvalidArgument, "user", `"user" is not a field of NextSeqRequest (its fields are forwarded_by, routing_version, uid and want_routing)`},
		{"uid 0", "NextSeq", "application/json", []byte(`{"uid":"0"}`), twirp.InvalidArgument, "uid", fmt.Sprintf("uid 0 is not in 1..%d", limit-1)},
		{"uid absent", "NextSeq", "application/json", []byte(`{}`), twirp.InvalidArgument, "uid", fmt.Sprintf("uid 0 is not in 1..%d", limit-1)},
		{"uid at the limit", "CurSeq", "application/protobuf", pb(&migv1.CurSeqRequest{Uid: limit}), twirp.InvalidArgument, "uid", fmt.Sprintf("uid %d is not in 1..%d", limit, limit-1)},
		{"want_routing a word", "NextSeq", "application/json", []byte(`{"uid":"9","want_routing":"yes"}`), twirp.InvalidArgument, "want_routing", `want_routing: "yes" is not true or false`},
		{"want_routing twice", "NextSeq", "application/json", []byte(`{"uid":"9","wantRouting":true,"want_routing":true}`), twirp.InvalidArgument, "want_routing", `want_routing is given twice (as "wantRouting", then as "want_routing")`},
		{"uids not a list", "NextSeqs", "application/json", []byte(`{"uids":"9"}`), twirp.InvalidArgument, "uids", `uids: "9" is not a list of unsigned integers`},
		{"uids with a word", "NextSeqs", "application/json", []byte(`{"uids":["9","x"]}`), twirp.InvalidArgument, "uids", `uids[1]: "x" is not an unsigned integer`},
		{"uids empty", "NextSeqs", "application/json", []byte(`{"uids":[]}`), twirp.InvalidArgument, "uids", "uids is empty: name at least one uid"},
		{"uids with 0", "NextSeqs", "application/protobuf", pb(&migv1.NextSeqsRequest{Uids: []uint64{9, 0}}), twirp.InvalidArgument, "uids", fmt.Sprintf("uids[1]: uid 0 is not in 1..%d", limit-1)},
		{"uids repeated", "NextSeqs", "application/protobuf", pb(&migv1.NextSeqsRequest{Uids: []uint64{9, 8, 9}}), twirp.InvalidArgument, "uids", "uids names uid 9 twice, at uids[0] and uids[2]"},
		{"uids too many", "NextSeqs", "application/protobuf", pb(&migv1.NextSeqsRequest{Uids: tooMany}), twirp.InvalidArgument, "uids", fmt.Sprintf("uids has %d uids, more than the limit of %d", len(tooMany), len(tooMany)-1)},
		{"uid for NextSeqs", "NextSeqs", "application/json", []byte(`{"uid":"9"}`), twirp.InvalidArgument, "uid", `"uid" is not a field of NextSeqsRequest`},
		{"not JSON", "NextSeqs", "application/json", []byte(`uids=9`), twirp.Malformed, "", "the request body is not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, url+seqp+tc.method, tc.contentType, tc.body)
			e := parseTwirpError(t, status, body)
			checkMessage(t, e)
			if e.Code != string(tc.code) || !strings.Contains(e.Msg, tc.msg) || e.Meta["argument"] != tc.arg {
				t.Fatalf("error %+v, want %s containing %q with argument %q", e, tc.code, tc.msg, tc.arg)
			}
		})
	}
	after, err := c.NextSeq(t.Context(), 9)
	if err != nil || after != before+1 {
		t.Fatalf("after refused requests uid 9 moved from %d to %d (%v)", before, after, err)
	}
}
