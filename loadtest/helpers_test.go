package loadtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migclient"
)

// issuer is an rpc.IDIssuer backed by a real generator on the real clock.
// While fail is set, NextN refuses with it.
type issuer struct {
	gen  *mig.Generator
	fail atomic.Pointer[error]
}

func (i *issuer) NextN(n int) (mig.Batch, error) {
	if err := i.fail.Load(); err != nil {
		return mig.Batch{}, *err
	}
	return i.gen.NextN(n)
}

func (i *issuer) Layout() mig.Layout { return layout }
func (i *issuer) Datacenter() string { return "test" }

func newIssuer(t testing.TB, worker uint32) *issuer {
	t.Helper()
	clk, err := clock.NewSlewing(clock.NewReal(), clock.SlewConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := mig.New(mig.Config{Layout: layout, Worker: worker}, clk, mig.NewMemCeiling(mig.MaxTick))
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{gen: g}
}

// idServer is a MIG IDService on a loopback port.
type idServer struct {
	*issuer
	url string
	// stallAt, when positive, makes the stallAt-th request wait for
	// stall before it is served, once.
	stallAt  int64
	stall    time.Duration
	requests atomic.Int64
}

func startIDServer(t testing.TB, worker uint32, setup func(*idServer)) *idServer {
	t.Helper()
	s := &idServer{issuer: newIssuer(t, worker)}
	if setup != nil {
		setup(s)
	}
	srv, err := rpc.NewServer(s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	real := clock.NewReal()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := s.requests.Add(1); n == s.stallAt {
			<-real.After(s.stall)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

// newIDClient returns a client of urls on the load generator's own
// transport, as `mig loadtest` makes it.
func newIDClient(t testing.TB, urls ...string) *migclient.Client {
	t.Helper()
	c, err := migclient.New(urls, migclient.WithHTTPClient(&http.Client{Transport: loadtest.NewTransport(clock.NewReal())}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// fakeSeq is an in-process SeqService: a map of counters under a mutex.
// rollbackAt, when positive, makes the rollbackAt-th call hand out a
// value below the last one of its uid, as a broken server would.
type fakeSeq struct {
	mu struct {
		sync.Mutex
		seqs  map[uint64]uint64
		calls int
	}
	rollbackAt int
}

func newFakeSeq() *fakeSeq {
	f := &fakeSeq{}
	f.mu.seqs = make(map[uint64]uint64)
	return f
}

func (f *fakeSeq) NextSeq(ctx context.Context, uid uint64) (uint64, error) {
	v, err := f.NextSeqs(ctx, []uint64{uid})
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (f *fakeSeq) NextSeqs(ctx context.Context, uids []uint64) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.calls++
	out := make([]uint64, len(uids))
	for i, u := range uids {
		f.mu.seqs[u]++
		out[i] = f.mu.seqs[u]
		if f.mu.calls == f.rollbackAt && i == 0 {
			f.mu.seqs[u] += 100 // the next caller gets 101 above...
			out[i] = f.mu.seqs[u]
			f.mu.seqs[u] -= 100 // ...and then the counter rolls back
		}
	}
	return out, nil
}

// dupIDs is an IDClient that hands out one ID twice, on its dupAt-th
// call, as a broken service would.
type dupIDs struct {
	c     *migclient.Client
	calls atomic.Int64
	dupAt int64
	first atomic.Uint64
}

func (d *dupIDs) NextIDs(ctx context.Context, n int) ([]mig.ID, migclient.Origin, error) {
	ids, o, err := d.c.NextIDs(ctx, n)
	if err != nil {
		return ids, o, err
	}
	switch d.calls.Add(1) {
	case 1:
		d.first.Store(uint64(ids[0]))
	case d.dupAt:
		ids[0] = mig.ID(d.first.Load())
	}
	return ids, o, err
}

// fakeRedis is a Redis that knows INCR and INCRBY, on a loopback port.
type fakeRedis struct {
	ln   net.Listener
	wg   sync.WaitGroup
	addr string
	mu   struct {
		sync.Mutex
		vals  map[string]int64
		conns map[net.Conn]bool
	}
	commands atomic.Int64
}

func startFakeRedis(t testing.TB) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRedis{ln: ln, addr: ln.Addr().String()}
	r.mu.vals = make(map[string]int64)
	r.mu.conns = make(map[net.Conn]bool)
	r.wg.Go(r.accept)
	t.Cleanup(r.close)
	return r
}

func (r *fakeRedis) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.mu.conns[c] = true
		r.mu.Unlock()
		r.wg.Go(func() { r.serve(c) })
	}
}

func (r *fakeRedis) close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.mu.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *fakeRedis) serve(c net.Conn) {
	defer c.Close()
	br, bw := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		args, err := readCommand(br)
		if err != nil {
			return
		}
		r.commands.Add(1)
		bw.WriteString(r.exec(args))
		if br.Buffered() == 0 { // answer a pipeline in one write
			if bw.Flush() != nil {
				return
			}
		}
	}
}

func (r *fakeRedis) exec(args []string) string {
	by := int64(1)
	switch {
	case len(args) == 2 && strings.EqualFold(args[0], "INCR"):
	case len(args) == 3 && strings.EqualFold(args[0], "INCRBY"):
		n, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return "-ERR value is not an integer or out of range\r\n"
		}
		by = n
	default:
		return fmt.Sprintf("-ERR unknown command '%s'\r\n", args[0])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.vals[args[1]] += by
	return ":" + strconv.FormatInt(r.mu.vals[args[1]], 10) + "\r\n"
}

// readCommand reads one RESP array of bulk strings.
func readCommand(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, errors.New("not an array")
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 || n > 16 {
		return nil, errors.New("bad array length")
	}
	args := make([]string, n)
	for i := range args {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "$") {
			return nil, errors.New("not a bulk string")
		}
		l, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil || l < 0 || l > 1<<20 {
			return nil, errors.New("bad bulk length")
		}
		buf := make([]byte, l+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:l])
	}
	return args, nil
}
