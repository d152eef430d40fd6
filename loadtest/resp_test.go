package loadtest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

// scriptedRedis answers every command on a loopback port with reply, read
// from the request only as far as the first line.
func scriptedRedis(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := br.ReadString('\n'); err != nil {
					return
				}
				if reply != "" {
					io.WriteString(c, reply)
				}
				io.Copy(io.Discard, br) // until closed
			})
		}
	})
	return ln.Addr().String()
}

func TestRESPReplies(t *testing.T) {
	tests := []struct {
		reply string
		want  int64
		err   string // "" for success
	}{
		{":42\r\n", 42, ""},
		{":-3\r\n", -3, ""},
		{"-ERR value is not an integer\r\n", 0, "redis says ERR value is not an integer"},
		{"+OK\r\n", 0, "is not an integer reply"},
		{":4x\r\n", 0, "integer reply"},
		{":1\n", 0, "malformed reply"},
		{":" + strings.Repeat("9", maxReplyLine) + "\r\n", 0, "longer than"},
	}
	clk := clock.NewReal()
	for _, tt := range tests {
		t.Run(tt.reply[:min(len(tt.reply), 12)], func(t *testing.T) {
			c, err := dialRESP(t.Context(), clk, scriptedRedis(t, tt.reply), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			out := make([]int64, 1)
			err = c.incrBy(t.Context(), []string{"k"}, 1, out)
			switch {
			case tt.err == "" && (err != nil || out[0] != tt.want):
				t.Errorf("got %d, %v; want %d", out[0], err, tt.want)
			case tt.err != "" && (err == nil || !errors.Is(err, ErrRESP) || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("error %v, want ErrRESP with %q", err, tt.err)
			}
		})
	}
}

func TestRESPTimeoutAndCancel(t *testing.T) {
	addr := scriptedRedis(t, "") // never answers
	clk := clock.NewReal()
	c, err := dialRESP(t.Context(), clk, addr, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	err = c.incrBy(t.Context(), []string{"k"}, 1, make([]int64, 1))
	if errorCode(err) != CodeTimeout {
		t.Errorf("silent server: %v (code %s), want a timeout", err, errorCode(err))
	}

	c, err = dialRESP(t.Context(), clk, addr, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-clk.After(50 * time.Millisecond)
		cancel()
	})
	if err := c.incrBy(ctx, []string{"k"}, 1, make([]int64, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v, want context.Canceled", err)
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, CodeTimeout},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, CodeNetwork},
		{ErrRESP, CodeRedis},
		{errors.New("?"), CodeOther},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("errorCode(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}
