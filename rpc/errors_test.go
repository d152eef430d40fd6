package rpc_test

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/seqfacade"
	"github.com/migsvc/mig/seqfacade/route"
	"github.com/migsvc/mig/workerid"
)

// quoted matches a quoted string of a message: the client's own text,
// which a message repeats as it came.
var quoted = regexp.MustCompile(`"(?:\\.|[^"\\])*"`)

// goPackagePrefix matches the "pkg: " a Go error begins with, for the
// packages of this module and those of the libraries under them whose
// errors could reach a handler.
var goPackagePrefix = regexp.MustCompile(`(^|[\s(\[])(?:clock|etcdcluster|etcdlocal|etcdtest|faultproxy|h1|lease|loadtest|mig|migclient|migv1|ntp|route|rpc|scenario|seqfacade|workerid|proto|protojson|json|http|net/http|tls|x509|etcdserver|etcdclient|mvcc|twirp): `)

// checkMessage checks the style of a Twirp error a client sees: no Go
// package prefix outside the client's own quoted text, and an
// invalid_argument names its argument, in meta and in the message.
func checkMessage(t testing.TB, e twerrBody) {
	t.Helper()
	if m := goPackagePrefix.FindString(quoted.ReplaceAllString(e.Msg, `""`)); m != "" {
		t.Fatalf("message %q has a Go package prefix %q", e.Msg, m)
	}
	if e.Code == string(twirp.InvalidArgument) {
		arg := e.Meta["argument"]
		if arg == "" {
			t.Fatalf("invalid_argument %q names no argument in its meta %v", e.Msg, e.Meta)
		}
		if !strings.Contains(e.Msg, arg) && !strings.Contains(e.Msg, strconv.Quote(arg)) {
			t.Fatalf("invalid_argument %q does not name its argument %q", e.Msg, arg)
		}
	}
}

// TestIDServiceJSONErrors: every JSON request Twirp's decoding would
// take wrongly (an unknown field dropped) or refuse without a word is
// refused with a message naming the field and the problem.
func TestIDServiceJSONErrors(t *testing.T) {
	issuer := newIssuer(t)
	_, ts := serve(t, issuer)
	for _, tc := range []struct {
		name, path, body string
		code             twirp.ErrorCode
		arg, msg         string
	}{
		{"unknown field", nextIDsPath, `{"cnt":3}`, twirp.InvalidArgument, "cnt", `"cnt" is not a field of NextIDsRequest (its fields are count)`},
		{"unknown beside known", nextIDsPath, `{"count":3,"extra":[1,{"a":2}]}`, twirp.InvalidArgument, "extra", `"extra" is not a field of NextIDsRequest`},
		{"count a word", nextIDsPath, `{"count":"abc"}`, twirp.InvalidArgument, "count", `count: "abc" is not an integer`},
		{"count a fraction", nextIDsPath, `{"count":1.5}`, twirp.InvalidArgument, "count", `count: 1.5 is not an integer`},
		{"count beyond int32", nextIDsPath, `{"count":2147483648}`, twirp.InvalidArgument, "count", `count: 2147483648 is not in -2147483648..2147483647`},
		{"count a bool", nextIDsPath, `{"count":true}`, twirp.InvalidArgument, "count", `count: true is not an integer`},
		{"count beyond float64", nextIDsPath, `{"count":1e700}`, twirp.InvalidArgument, "count", `count: 1e700`},
		{"count twice", nextIDsPath, `{"count":1,"count":2}`, twirp.InvalidArgument, "count", `count is given twice`},
		{"not JSON", nextIDsPath, `count=3`, twirp.Malformed, "", `the request body is not JSON: invalid character 'c' looking for beginning of value (at byte 1)`},
		{"cut short", nextIDsPath, `{"count":`, twirp.Malformed, "", `the request body is not JSON: unexpected end of JSON input`},
		{"trailing data", nextIDsPath, `{"count":1} {}`, twirp.Malformed, "", `the request body is not JSON: invalid character '{' after top-level value`},
		{"empty", nextIDsPath, ``, twirp.Malformed, "", `the request body is empty`},
		{"array", decodePath, `[1,2]`, twirp.Malformed, "", `the request body is JSON an array, not an object`},
		{"null", decodePath, `null`, twirp.Malformed, "", `the request body is JSON null, not an object`},
		{"not UTF-8", nextIDsPath, "{\"count\":\"\xff\"}", twirp.Malformed, "", `not valid UTF-8`},
		{"decode without id", decodePath, `{}`, twirp.InvalidArgument, "id", `id is missing`},
		{"decode null id", decodePath, `{"id":null}`, twirp.InvalidArgument, "id", `id is missing`},
		{"decode negative id", decodePath, `{"id":"-1"}`, twirp.InvalidArgument, "id", `id: "-1" is not an unsigned integer`},
		{"decode id beyond 64 bits", decodePath, `{"id":"18446744073709551616"}`, twirp.InvalidArgument, "id", `id: "18446744073709551616" is not in 0..18446744073709551615`},
		{"decode misspelt", decodePath, `{"ID":"5"}`, twirp.InvalidArgument, "ID", `"ID" is not a field of DecodeRequest (its fields are id)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, ts.URL+tc.path, "application/json", []byte(tc.body))
			e := parseTwirpError(t, status, body)
			checkMessage(t, e)
			if e.Code != string(tc.code) || !strings.Contains(e.Msg, tc.msg) || e.Meta["argument"] != tc.arg {
				t.Fatalf("error %+v, want %s containing %q with argument %q", e, tc.code, tc.msg, tc.arg)
			}
		})
	}
	if n := issuer.calls.Load(); n != 0 {
		t.Fatalf("refused requests reached the issuer %d times", n)
	}
}

// TestDecodeIDAbsentOrZero: Decode tells an absent id from 0, in JSON and
// in protobuf alike.
func TestDecodeIDAbsentOrZero(t *testing.T) {
	_, ts := serve(t, newIssuer(t))
	zero, err := proto.Marshal(&migv1.DecodeRequest{Id: proto.Uint64(0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		ok                bool
	}{
		{"json 0", "application/json", []byte(`{"id":"0"}`), true},
		{"json 0 as a number", "application/json", []byte(`{"id":0}`), true},
		{"json absent", "application/json", []byte(`{}`), false},
		{"protobuf 0", "application/protobuf", zero, true},
		{"protobuf absent", "application/protobuf", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, ts.URL+decodePath, tc.contentType, tc.body)
			if tc.ok {
				if status != http.StatusOK {
					t.Fatalf("status %d: %s", status, body)
				}
				return
			}
			e := parseTwirpError(t, status, body)
			if e.Code != string(twirp.InvalidArgument) || e.Meta["argument"] != "id" || !strings.HasPrefix(e.Msg, "id is missing") {
				t.Fatalf("error %+v, want invalid_argument: id is missing", e)
			}
		})
	}
}

// TestTwirpErrorStyle: every domain error a handler can meet becomes a
// message in one style, without the packages' names, and keeps the
// error itself as its cause.
func TestTwirpErrorStyle(t *testing.T) {
	table := route.Table{Version: 4, SectionSize: 10, GroupSize: 1, Groups: 2, Routes: []route.Route{{First: 0, Last: 1, Node: "n2", Address: "10.0.0.2:7070"}}}
	for _, tc := range []struct {
		err  error
		code twirp.ErrorCode
		msg  string
	}{
		{workerid.ErrNotHeld, twirp.Unavailable, "no worker ID held"},
		{fmt.Errorf("%w: %w", workerid.ErrNotHeld, mig.ErrFenced), twirp.Unavailable, "no worker ID held: generator stopped: worker ID not held"},
		{fmt.Errorf("%w: NTP offset 2s", workerid.ErrClockUnsafe), twirp.Unavailable, "clock unsafe: NTP offset 2s"},
		{mig.ErrCeiling, twirp.Unavailable, "time watermark reached"},
		{fmt.Errorf("%w: 0 not in 1..262144", mig.ErrBatchSize), twirp.InvalidArgument, "count: batch size out of range: 0 not in 1..262144"},
		{fmt.Errorf("%w: node's claim on group 3 has expired", seqfacade.ErrUnavailable), twirp.Unavailable, "this node cannot answer safely now: node's claim on group 3 has expired"},
		{fmt.Errorf("%w: %w", seqfacade.ErrUnavailable, seqfacade.ErrClosed), twirp.Unavailable, "this node cannot answer safely now: node closed"},
		{fmt.Errorf("%w: group 3 unloaded: %w: writing /mig/seq/3: lease lost", seqfacade.ErrUnavailable, seqfacade.ErrNotOwner), twirp.Unavailable,
			"this node cannot answer safely now: group 3 unloaded: this node no longer owns the uid's group: writing /mig/seq/3: lease lost"},
		{fmt.Errorf("%w: section 5's max_seq is 9", seqfacade.ErrExhausted), twirp.ResourceExhausted, "sequence space exhausted: section 5's max_seq is 9"},
		{&seqfacade.NotOwnerError{Group: 1, Owner: "n2", Address: "10.0.0.2:7070", Routing: table}, twirp.FailedPrecondition,
			`the uid's group 1 is served by node n2 at "10.0.0.2:7070" (routing version 4)`},
		{&seqfacade.NotHomeError{Group: 1, Datacenter: "osaka"}, twirp.FailedPrecondition, "uid's group 1 is served by datacenter osaka"},
		{fmt.Errorf("%w: uid 0 (uids start at 1)", seqfacade.ErrInvalidUID), twirp.InvalidArgument, "uid: invalid uid: uid 0 (uids start at 1)"},
		{fmt.Errorf("reading x: %w", errors.New("etcdserver: request timed out")), twirp.Internal, "reading x: request timed out"},
		{errors.New("disk on fire"), twirp.Internal, "disk on fire"},
		{twirp.NewError(twirp.Unavailable, "proto: mig: forwarded"), twirp.Unavailable, "forwarded"},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			twerr := rpc.TwirpError(tc.err)
			if twerr.Code() != tc.code || !strings.HasPrefix(twerr.Msg(), tc.msg) {
				t.Fatalf("%s %q, want %s %q", twerr.Code(), twerr.Msg(), tc.code, tc.msg)
			}
			checkMessage(t, twerrBody{Code: string(twerr.Code()), Msg: twerr.Msg(), Meta: twerr.MetaMap()})
			if !errors.Is(twerr, tc.err) {
				t.Fatalf("the cause %v is lost", tc.err)
			}
			if again := rpc.TwirpError(twerr); again.Msg() != twerr.Msg() || again.Code() != twerr.Code() {
				t.Fatalf("a second pass made %s %q of %s %q", again.Code(), again.Msg(), twerr.Code(), twerr.Msg())
			}
		})
	}
}
