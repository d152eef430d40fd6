package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/migsvc/mig/clock"
)

// maxReplyLine bounds a reply line of Redis: an integer reply is at most
// 21 bytes, an error a short message.
const maxReplyLine = 4096

// respConn is a connection to Redis that speaks just enough RESP for
// INCR and INCRBY, pipelined. Not safe for concurrent use: each load
// client has its own. After any error the connection is closed and must
// not be used again (a reply may be half read).
type respConn struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	clk     clock.Source
	timeout time.Duration
	num     []byte // scratch for formatting numbers
}

// dialRESP connects to the Redis at addr within timeout.
func dialRESP(ctx context.Context, clk clock.Source, addr string, timeout time.Duration) (*respConn, error) {
	d := net.Dialer{Deadline: clk.Now().Wall.Add(timeout)}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &respConn{
		conn:    conn,
		r:       bufio.NewReaderSize(conn, maxReplyLine),
		w:       bufio.NewWriter(conn),
		clk:     clk,
		timeout: timeout,
	}, nil
}

func (c *respConn) close() error { return c.conn.Close() }

// incrBy adds by to each key in one round trip and stores the new values
// in out (len(out) == len(keys)): INCR when by is 1, INCRBY otherwise.
// On error the connection is closed.
func (c *respConn) incrBy(ctx context.Context, keys []string, by int64, out []int64) error {
	err := c.roundTrip(ctx, keys, by, out)
	if err != nil {
		c.conn.Close()
	}
	return err
}

func (c *respConn) roundTrip(ctx context.Context, keys []string, by int64, out []int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The deadline is wall time, as net.Conn wants it.
	if err := c.conn.SetDeadline(c.clk.Now().Wall.Add(c.timeout)); err != nil {
		return err
	}
	// Closing the connection is the one way to interrupt its I/O when ctx
	// ends; the connection is not used again after an error. A context
	// that never ends needs no watch (and a benchmark's call then
	// allocates nothing).
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.conn.Close() })
		defer stop()
	}
	for _, k := range keys {
		if by == 1 {
			c.w.WriteString("*2\r\n$4\r\nINCR\r\n")
			c.bulk(k)
		} else {
			c.w.WriteString("*3\r\n$6\r\nINCRBY\r\n")
			c.bulk(k)
			c.num = strconv.AppendInt(c.num[:0], by, 10)
			c.bulk(string(c.num))
		}
	}
	if err := c.w.Flush(); err != nil {
		return c.ctxErr(ctx, err)
	}
	for i := range keys {
		v, err := c.readInt()
		if err != nil {
			return c.ctxErr(ctx, err)
		}
		out[i] = v
	}
	return nil
}

// ctxErr prefers the context's error when the context ended: that is why
// the connection broke.
func (c *respConn) ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

func (c *respConn) bulk(s string) {
	c.w.WriteByte('$')
	c.num = strconv.AppendInt(c.num[:0], int64(len(s)), 10)
	c.w.Write(c.num)
	c.w.WriteString("\r\n")
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
}

// readInt reads one reply, which must be an integer (":42\r\n"); an error
// reply ("-ERR ...\r\n") or any other type is an error wrapping ErrRESP.
func (c *respConn) readInt() (int64, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return 0, fmt.Errorf("%w: reply line longer than %d bytes", ErrRESP, maxReplyLine)
	}
	if err != nil {
		return 0, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, fmt.Errorf("%w: malformed reply %q", ErrRESP, line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case ':':
		v, ok := parseInt(body)
		if !ok {
			return 0, fmt.Errorf("%w: integer reply %q", ErrRESP, body)
		}
		return v, nil
	case '-':
		return 0, fmt.Errorf("%w: redis says %s", ErrRESP, body)
	}
	return 0, fmt.Errorf("%w: %q is not an integer reply", ErrRESP, line)
}

// parseInt parses a decimal integer, with an optional minus sign, in
// place: no string is made of it, so a reply costs no allocation.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	v, ok := parseDigits(b)
	if neg {
		v = -v
	}
	return v, ok
}
