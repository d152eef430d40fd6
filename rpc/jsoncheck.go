package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The generated Twirp code decodes a JSON body with protojson's
// DiscardUnknown: a misspelt field ({"cnt":3}) is dropped without a word
// and the call runs with the default (one ID, not three), and whatever it
// cannot decode is answered "the json request could not be decoded",
// naming nothing. So the server checks each JSON body itself before Twirp
// reads it, as strictly as protojson without DiscardUnknown, and refuses
// what that would refuse with a message naming the field and the
// problem:
//
//	not JSON, not one object, not UTF-8, empty       malformed
//	unknown field, field given twice, a value of
//	  the wrong type or out of the field's range     invalid_argument, meta argument=the field
//
// A body protojson accepts passes unchanged: the check decides nothing
// protojson would decide otherwise, it only says why. Protobuf bodies are
// not checked here: an unknown protobuf field is kept as unknown, as
// protobuf's compatibility rules want (a newer client may send a field
// this server does not know yet).

// jsonInputs are the request types of a service's methods, by method
// name, for checkJSON. Read-only once built.
type jsonInputs map[string]protoreflect.MessageType

// newJSONInputs returns the request types of sd's methods. types finds a
// message type by name (protoregistry.GlobalTypes.FindMessageByName).
func newJSONInputs(sd protoreflect.ServiceDescriptor, types func(protoreflect.FullName) (protoreflect.MessageType, error)) (jsonInputs, error) {
	in := jsonInputs{}
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		mt, err := types(md.Input().FullName())
		if err != nil {
			return nil, fmt.Errorf("request type of %s: %w", md.FullName(), err)
		}
		in[string(md.Name())] = mt
	}
	return in, nil
}

// maxShown bounds how much of a client's value or field name a message
// repeats: enough to recognize it, never the whole of a large body.
const maxShown = 40

// checkJSON returns nil when body is a JSON request protojson decodes
// into mt without DiscardUnknown, and otherwise an error for the client:
// a *bodyError (malformed) when body is not a JSON object, or an
// *argError naming the first field at fault.
func checkJSON(body []byte, mt protoreflect.MessageType) error {
	err := protojson.Unmarshal(body, mt.New().Interface())
	if err == nil {
		return nil
	}
	return explainJSON(body, mt, err)
}

// explainJSON says what is wrong with body, which protojson refused with
// err: it finds the fault again, field by field, with encoding/json and
// protojson on one field at a time.
func explainJSON(body []byte, mt protoreflect.MessageType, err error) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &bodyError{"the request body is empty: send a JSON object ({} for no fields)"}
	}
	if !utf8.Valid(body) {
		return &bodyError{"the request body is not valid UTF-8, as JSON must be"}
	}
	if !json.Valid(body) {
		var syn *json.SyntaxError
		if jerr := json.Unmarshal(body, new(any)); errors.As(jerr, &syn) {
			return &bodyError{fmt.Sprintf("the request body is not JSON: %s (at byte %d)", syn.Error(), syn.Offset)}
		}
		return &bodyError{"the request body is not JSON"}
	}
	// Numbers as they are written: a float64 would refuse valid JSON such
	// as 1e700, which the field-by-field check below names instead.
	var v any
	whole := json.NewDecoder(bytes.NewReader(body))
	whole.UseNumber()
	if err := whole.Decode(&v); err != nil {
		return &bodyError{"the request body is not JSON"}
	}
	if _, ok := v.(map[string]any); !ok {
		return &bodyError{fmt.Sprintf("the request body is JSON %s, not an object: send {\"field\": value, ...}", jsonKind(v))}
	}

	md := mt.Descriptor()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{', checked above
		return &bodyError{"the request body is not a JSON object"}
	}
	seen := map[protoreflect.FieldNumber]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			break
		}
		name := shown(key)
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByTextName(key)
		}
		if fd == nil {
			if name == "" {
				name = `""` // a meta value must not be empty
			}
			return &argError{field: name, msg: fmt.Sprintf("%q is not a field of %s (its fields are %s)", name, md.Name(), fieldNames(md))}
		}
		field := string(fd.Name())
		if first, dup := seen[fd.Number()]; dup {
			return &argError{field: field, msg: fmt.Sprintf("%s is given twice (as %q, then as %q)", field, first, name)}
		}
		seen[fd.Number()] = name
		if err := checkField(mt, key, field, fd, raw); err != nil {
			return err
		}
	}
	// Every field passed alone, yet the whole did not: say what protojson
	// said, in the client's words.
	return &bodyError{"the JSON request could not be decoded: " + clientText(err.Error())}
}

// checkField checks one field's value by decoding {key: raw} alone, and
// returns an *argError naming the field by its .proto name (and the
// element of a list) when protojson refuses it.
func checkField(mt protoreflect.MessageType, key, name string, fd protoreflect.FieldDescriptor, raw json.RawMessage) error {
	if decodesAlone(mt, key, raw) {
		return nil
	}
	if fd.IsList() {
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return &argError{field: name, msg: fmt.Sprintf("%s: %s is not a list of %s", name, shownValue(raw), plural(fd))}
		}
		for i, e := range elems {
			if !decodesAlone(mt, key, json.RawMessage("["+string(e)+"]")) {
				return &argError{field: name, msg: fmt.Sprintf("%s[%d]: %s %s", name, i, shownValue(e), valueProblem(fd, e))}
			}
		}
	}
	return &argError{field: name, msg: fmt.Sprintf("%s: %s %s", name, shownValue(raw), valueProblem(fd, raw))}
}

// decodesAlone reports whether protojson decodes {key: raw} into a new mt.
func decodesAlone(mt protoreflect.MessageType, key string, raw json.RawMessage) bool {
	k, _ := json.Marshal(key)
	b := make([]byte, 0, len(k)+len(raw)+3)
	b = append(append(append(append(b, '{'), k...), ':'), raw...)
	b = append(b, '}')
	return protojson.Unmarshal(b, mt.New().Interface()) == nil
}

// valueProblem says why raw is no value of fd's kind: "is not an
// unsigned integer", "is not in -2147483648..2147483647", ...
func valueProblem(fd protoreflect.FieldDescriptor, raw json.RawMessage) string {
	var lo, hi *big.Int
	what := ""
	switch fd.Kind() {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		lo, hi, what = big.NewInt(0), new(big.Int).SetUint64(1<<32-1), "an unsigned integer"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		lo, hi, what = big.NewInt(0), new(big.Int).SetUint64(1<<64-1), "an unsigned integer"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		lo, hi, what = big.NewInt(-1<<31), big.NewInt(1<<31-1), "an integer"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		lo, hi, what = big.NewInt(-1<<63), big.NewInt(1<<63-1), "an integer"
	case protoreflect.BoolKind:
		return "is not true or false"
	case protoreflect.StringKind:
		return "is not a string"
	case protoreflect.BytesKind:
		return "is not base64 text"
	default:
		return fmt.Sprintf("is not a %s", fd.Kind())
	}
	n, ok := jsonInteger(raw)
	switch {
	case !ok:
		return "is not " + what
	case n.Sign() < 0 && lo.Sign() == 0:
		return "is not " + what
	case n.Cmp(lo) < 0 || n.Cmp(hi) > 0:
		return fmt.Sprintf("is not in %s..%s", lo, hi)
	}
	return "is not " + what // an integer in range that protojson refused all the same
}

// jsonInteger reads raw as protojson reads an integer: a number or a
// string holding one, integral (1e3 is 1000).
func jsonInteger(raw json.RawMessage) (*big.Int, bool) {
	s := string(bytes.TrimSpace(raw))
	if u, err := unquote(s); err == nil {
		s = strings.TrimSpace(u)
	}
	f, _, err := big.ParseFloat(s, 10, 256, big.ToNearestEven)
	if err != nil || f.IsInf() {
		return nil, false
	}
	n, acc := f.Int(nil)
	return n, acc == big.Exact
}

func unquote(s string) (string, error) {
	var u string
	err := json.Unmarshal([]byte(s), &u)
	return u, err
}

// jsonKind names the JSON type of v, as encoding/json decodes it.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "true or false"
	case float64, json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "a value"
}

// plural names the elements of a list field: "unsigned integers".
func plural(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return "unsigned integers"
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return "integers"
	case protoreflect.StringKind:
		return "strings"
	}
	return fmt.Sprintf("%s values", fd.Kind())
}

// fieldNames lists md's fields by their .proto names, as the server
// writes them in its answers.
func fieldNames(md protoreflect.MessageDescriptor) string {
	var names []string
	for i := range md.Fields().Len() {
		names = append(names, string(md.Fields().Get(i).Name()))
	}
	slices.Sort(names)
	switch len(names) {
	case 0:
		return "none"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// shown is a field name as a message repeats it: cut to maxShown bytes.
func shown(s string) string {
	if len(s) <= maxShown {
		return s
	}
	return strings.ToValidUTF8(s[:maxShown], "") + "..."
}

// shownValue is a JSON value as a message repeats it: its text, cut to
// maxShown bytes. A string cut short is closed again, so that the
// message's quotes still pair.
func shownValue(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) <= maxShown || s[0] != '"' {
		return shown(s)
	}
	s = strings.ToValidUTF8(s[:maxShown], "")
	if n := len(s) - len(strings.TrimRight(s, `\`)); n%2 == 1 {
		s = s[:len(s)-1] // half an escape
	}
	return s + `..."`
}
