package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/rpc/migv1"
)

// ErrWrongAnswer is wrapped by a Caller's error for an answer that
// arrived but is wrong: another status than 200, a count of IDs other
// than asked, a value not above the one before.
var ErrWrongAnswer = errors.New("loadtest: wrong answer")

// A Caller makes one request for count values (IDs, or an INCRBY of
// count) and checks its answer. It is what the benchmark loops
// ([Bench]) drive: the clients below speak the wire protocol directly
// and allocate nothing per call, as redis-benchmark speaks RESP, so that
// what a benchmark measures is the server and not the client's own
// collector. Not safe for concurrent use: each load goroutine has its
// own.
type Caller interface {
	Call(ctx context.Context, count int) error
}

// WireConn is one keep-alive HTTP/1.1 connection to MIG that posts a
// Twirp method's protobuf request, encoded once per count, reads each
// answer up to its Content-Length, and has a check judge the body, all
// without allocating. Not safe for concurrent use.
type WireConn struct {
	conn   net.Conn
	br     *bufio.Reader
	reqs   map[int][]byte // by count: the whole request
	encode func(count int) proto.Message
	path   string
	check  func(body []byte, count int) error
	body   []byte
}

var _ Caller = (*WireConn)(nil)

func newWireConn(conn net.Conn, path string, encode func(int) proto.Message, check func([]byte, int) error) *WireConn {
	return &WireConn{conn: conn, br: bufio.NewReader(conn), reqs: map[int][]byte{}, encode: encode, path: path, check: check}
}

// NewIDConn returns a WireConn that calls NextIDs on conn and checks
// that each answer holds count IDs, counted off the wire.
func NewIDConn(conn net.Conn) *WireConn {
	return newWireConn(conn, migv1.IDServicePathPrefix+"NextIDs",
		func(count int) proto.Message { return &migv1.NextIDsRequest{Count: proto.Int32(int32(count))} },
		func(body []byte, count int) error {
			n, err := CountIDs(body)
			if err == nil && n != count {
				err = fmt.Errorf("%w: %d IDs for a count of %d", ErrWrongAnswer, n, count)
			}
			return err
		})
}

// NewSeqConn returns a WireConn that calls NextSeq for uid on conn
// (whatever the count) and checks that each value is above the one
// before.
func NewSeqConn(conn net.Conn, uid uint64) *WireConn {
	var last uint64
	return newWireConn(conn, migv1.SeqServicePathPrefix+"NextSeq",
		func(int) proto.Message { return &migv1.NextSeqRequest{Uid: uid} },
		func(body []byte, _ int) error {
			v, err := firstVarint(body, seqField)
			if err == nil && v <= last {
				err = fmt.Errorf("%w: uid %d: seq %d after %d", ErrWrongAnswer, uid, v, last)
			}
			last = v
			return err
		})
}

// Call implements Caller. ctx is not watched: set a deadline on the
// connection to bound a call.
func (w *WireConn) Call(_ context.Context, count int) error {
	req, ok := w.reqs[count]
	if !ok {
		body, err := proto.Marshal(w.encode(count))
		if err != nil {
			return err
		}
		req = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\n"+
			"Content-Type: application/protobuf\r\nContent-Length: %d\r\n\r\n%s", w.path, w.conn.RemoteAddr(), len(body), body)
		w.reqs[count] = req
	}
	if _, err := w.conn.Write(req); err != nil {
		return err
	}
	status, err := w.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("%w: answer %q", ErrWrongAnswer, status)
	}
	length := -1
	for {
		line, err := w.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && equalFoldASCII(k, "content-length") {
			n, ok := parseDigits(bytes.TrimSpace(v))
			if !ok {
				return fmt.Errorf("%w: header %q", ErrWrongAnswer, line)
			}
			length = int(n)
		}
	}
	if length < 0 {
		return fmt.Errorf("%w: answer without Content-Length", ErrWrongAnswer)
	}
	if cap(w.body) < length {
		w.body = make([]byte, length)
	}
	w.body = w.body[:length]
	if _, err := io.ReadFull(w.br, w.body); err != nil {
		return err
	}
	return w.check(w.body, count)
}

// Close closes the connection.
func (w *WireConn) Close() error { return w.conn.Close() }

// RedisConn calls INCR (count 1) or INCRBY count on one key over one RESP
// connection, the client `mig loadtest --redis` uses, and checks that
// each value is above the one before. Not safe for concurrent use.
type RedisConn struct {
	c    *respConn
	keys []string
	out  []int64
	last int64
}

var _ Caller = (*RedisConn)(nil)

// DialRedis connects to the Redis at addr within timeout, which then
// bounds every call too, for calls on key.
func DialRedis(ctx context.Context, clk clock.Source, addr, key string, timeout time.Duration) (*RedisConn, error) {
	c, err := dialRESP(ctx, clk, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &RedisConn{c: c, keys: []string{key}, out: make([]int64, 1)}, nil
}

// Call implements Caller. A ctx without a Done channel costs nothing to
// watch; after an error the connection is closed.
func (r *RedisConn) Call(ctx context.Context, count int) error {
	if err := r.c.incrBy(ctx, r.keys, int64(count), r.out); err != nil {
		return err
	}
	if v := r.out[0]; v <= r.last {
		return fmt.Errorf("%w: %d after %d", ErrWrongAnswer, v, r.last)
	}
	r.last = r.out[0]
	return nil
}

// Close closes the connection.
func (r *RedisConn) Close() error { return r.c.close() }

// ClientCaller makes its calls through an IDClient, such as the
// *rpc.Client applications use, and checks that each answer holds count
// IDs. It is as safe for concurrent use as its client.
type ClientCaller struct{ IDs IDClient }

var _ Caller = ClientCaller{}

// Call implements Caller.
func (c ClientCaller) Call(ctx context.Context, count int) error {
	ids, _, err := c.IDs.NextIDs(ctx, count)
	if err == nil && len(ids) != count {
		err = fmt.Errorf("%w: %d IDs for a count of %d", ErrWrongAnswer, len(ids), count)
	}
	return err
}

// parseDigits parses a non-negative decimal number without allocating.
func parseDigits(b []byte) (int64, bool) {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' || v > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, len(b) > 0
}

// equalFoldASCII reports whether b equals the lower-case ASCII s,
// ignoring case, without allocating.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// seqField is NextSeqResponse's seq.
var seqField = (&migv1.NextSeqResponse{}).ProtoReflect().Descriptor().Fields().ByName("seq").Number()

// firstVarint returns the varint field num of an encoded message, which
// must be there.
func firstVarint(b []byte, num protowire.Number) (uint64, error) {
	for len(b) > 0 {
		n, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return 0, protowire.ParseError(k)
		}
		b = b[k:]
		if n == num && typ == protowire.VarintType {
			v, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return 0, protowire.ParseError(k)
			}
			return v, nil
		}
		if k = protowire.ConsumeFieldValue(n, typ, b); k < 0 {
			return 0, protowire.ParseError(k)
		}
		b = b[k:]
	}
	return 0, errors.New("loadtest: no field " + fmt.Sprint(num))
}

// idsField is NextIDsResponse's ids.
var idsField = (&migv1.NextIDsResponse{}).ProtoReflect().Descriptor().Fields().ByName("ids").Number()

// CountIDs counts the IDs in an encoded NextIDsResponse, packed or not,
// checking the encoding as it goes, without allocating: proto.Unmarshal
// would allocate the slice and the datacenter's string, and at the rates
// a benchmark runs the client's collector then runs often enough to show
// in the latencies it measures.
func CountIDs(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return 0, protowire.ParseError(k)
		}
		b = b[k:]
		switch {
		case num == idsField && typ == protowire.BytesType:
			packed, k := protowire.ConsumeBytes(b)
			if k < 0 {
				return 0, protowire.ParseError(k)
			}
			for len(packed) > 0 {
				_, j := protowire.ConsumeVarint(packed)
				if j < 0 {
					return 0, protowire.ParseError(j)
				}
				packed, n = packed[j:], n+1
			}
			b = b[k:]
		case num == idsField && typ == protowire.VarintType:
			_, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return 0, protowire.ParseError(k)
			}
			b, n = b[k:], n+1
		default:
			k := protowire.ConsumeFieldValue(num, typ, b)
			if k < 0 {
				return 0, protowire.ParseError(k)
			}
			b = b[k:]
		}
	}
	return n, nil
}
