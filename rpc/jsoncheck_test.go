package rpc

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/migsvc/mig/rpc/migv1"
)

// FuzzCheckJSON: checkJSON accepts exactly what protojson without
// DiscardUnknown accepts, and for everything else finds the fault itself:
// a malformed body, or an invalid argument naming a field of the request
// or quoting the unknown one, never protojson's own words.
func FuzzCheckJSON(f *testing.F) {
	types := []protoreflect.MessageType{
		(&migv1.NextIDsRequest{}).ProtoReflect().Type(),
		(&migv1.DecodeRequest{}).ProtoReflect().Type(),
		(&migv1.NextSeqRequest{}).ProtoReflect().Type(),
		(&migv1.NextSeqsRequest{}).ProtoReflect().Type(),
	}
	for _, seed := range []struct {
		t    uint8
		body string
	}{
		{0, `{"count":3}`}, {0, `{"cnt":3}`}, {0, `{"count":"abc"}`}, {0, `{"count":1,"count":2}`},
		{0, `{"count":2147483648}`}, {0, `{"count":1e3}`}, {0, `{"count":null}`}, {0, ``}, {0, `[]`},
		{1, `{"id":"18446744073709551615"}`}, {1, `{"id":"-1"}`}, {1, `{"id":1.5}`}, {1, "{\"id\":\"\xff\"}"},
		{2, `{"uid":"5","wantRouting":true,"want_routing":true}`}, {2, `{"forwarded_by":"\ud800"}`}, {2, `{"uid":{}}`},
		{3, `{"uids":["1",2,"x"]}`}, {3, `{"uids":[[1]]}`}, {3, `{"uids":null}`}, {3, `{"uids":[null]}`},
	} {
		f.Add(seed.t, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		mt := types[int(which)%len(types)]
		err := checkJSON(body, mt)
		strict := protojson.Unmarshal(body, mt.New().Interface())
		if (err == nil) != (strict == nil) {
			t.Fatalf("%q: checkJSON %v, protojson %v", body, err, strict)
		}
		if err == nil {
			return
		}
		var arg *argError
		var bad *bodyError
		switch {
		case errors.As(err, &arg):
			if arg.field == "" || !strings.Contains(arg.msg, arg.field) && !strings.Contains(arg.msg, strconv.Quote(arg.field)) {
				t.Fatalf("%q: %q names no field (%q)", body, arg.msg, arg.field)
			}
		case errors.As(err, &bad):
			if strings.HasPrefix(bad.msg, "the JSON request could not be decoded") {
				t.Fatalf("%q: fault not found: %q (protojson: %v)", body, bad.msg, strict)
			}
		default:
			t.Fatalf("%q: error %T %v", body, err, err)
		}
	})
}
