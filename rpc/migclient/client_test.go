package migclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/proto"

	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/rpc/migv1"
	"github.com/migsvc/mig/workerid"
)

func TestClientFailsOverFromDeadEndpoint(t *testing.T) {
	dead := deadEndpoint(t)
	_, healthy := serve(t, newIssuer(t))
	c := newClient(t, []string{dead, healthy.URL})
	for _, call := range []struct {
		name string
		f    func() (string, error)
	}{
		{"NextIDs", func() (string, error) {
			_, o, err := c.NextIDs(t.Context(), 3)
			return o.Endpoint, err
		}},
		{"Decode", func() (string, error) {
			_, err := c.Decode(t.Context(), 42)
			return "", err
		}},
	} {
		t.Run(call.name, func(t *testing.T) {
			migclient.SetNextEndpoint(c, 0, 0)
			endpoint, err := call.f()
			if err != nil {
				t.Fatal(err)
			}
			if endpoint != "" && endpoint != healthy.URL {
				t.Fatalf("answered by %s, want %s", endpoint, healthy.URL)
			}
			if got := migclient.NextEndpoint(c); got != 1 {
				t.Fatalf("next endpoint %d, want the healthy one, 1", got)
			}
		})
	}
}

func TestClientFailsOverFromUnavailable(t *testing.T) {
	sick := newIssuer(t)
	sick.setFail(fmt.Errorf("%w: %w", workerid.ErrNotHeld, mig.ErrFenced))
	sickSrv, _ := serve(t, sick)
	sickTS, sickHits := counted(t, sickSrv.Handler())
	_, healthy := serve(t, newIssuer(t))

	c := newClient(t, []string{sickTS.URL, healthy.URL})
	migclient.SetNextEndpoint(c, 0, 0)
	ids, origin, err := c.NextIDs(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || origin.Endpoint != healthy.URL {
		t.Fatalf("%v from %+v", ids, origin)
	}
	if sickHits.Load() != 1 || sick.calls.Load() != 1 {
		t.Fatalf("sick endpoint asked %d times, want 1", sickHits.Load())
	}
	// The client remembers the healthy endpoint.
	for range 5 {
		if _, _, err := c.NextIDs(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if sickHits.Load() != 1 {
		t.Fatalf("sick endpoint asked again after the client moved on")
	}
}

// hangingEndpoint reads a request and never answers until the test ends:
// the request reached a server, whose answer is lost.
func hangingEndpoint(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	stop := make(chan struct{})
	ts, n := counted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop) }) // runs before ts.Close, which waits for handlers
	return ts, n
}

// resettingEndpoint answers 200 with a body cut short: the connection
// breaks mid-answer.
func resettingEndpoint(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	return counted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/protobuf\r\nContent-Length: 100\r\n\r\n\x0a\x05")
		_ = buf.Flush()
	}))
}

func TestClientRetriesLostAnswersElsewhere(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(*testing.T) (*httptest.Server, *atomic.Int64)
	}{
		{"timeout after sending", hangingEndpoint},
		{"connection reset mid-answer", resettingEndpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lost, hits := tc.start(t)
			issuer := newIssuer(t)
			_, healthy := serve(t, issuer)
			c := newClient(t, []string{lost.URL, healthy.URL}, migclient.WithTimeout(200*time.Millisecond))

			migclient.SetNextEndpoint(c, 0, 0)
			ids, origin, err := c.NextIDs(t.Context(), 4)
			if err != nil {
				t.Fatal(err)
			}
			if origin.Endpoint != healthy.URL || len(ids) != 4 || hits.Load() != 1 {
				t.Fatalf("%v from %s after %d attempts on the lost endpoint", ids, origin.Endpoint, hits.Load())
			}

			migclient.SetNextEndpoint(c, 0, 0)
			if _, err := c.Decode(t.Context(), ids[0]); err != nil {
				t.Fatal(err)
			}
			if hits.Load() != 2 {
				t.Fatalf("Decode did not try the lost endpoint first")
			}
		})
	}
}

func TestClientStopsOnDefiniteAnswers(t *testing.T) {
	// Internal and invalid_argument are answers another worker would
	// repeat: the client returns them without trying the next endpoint.
	broken := newIssuer(t)
	broken.setFail(errors.New("disk on fire"))
	brokenSrv, _ := serve(t, broken)
	first, _ := counted(t, brokenSrv.Handler())
	_, otherSrv := serve(t, newIssuer(t))
	second, secondHits := counted(t, otherSrv.Handler)

	c := newClient(t, []string{first.URL, second.URL})
	migclient.SetNextEndpoint(c, 0, 0)
	_, _, err := c.NextIDs(t.Context(), 1)
	if twerr := twirpErr(t, err); twerr.Code() != twirp.Internal || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("error %v", err)
	}
	migclient.SetNextEndpoint(c, 0, 0)
	_, err = c.Decode(t.Context(), 1<<63)
	if twerr := twirpErr(t, err); twerr.Code() != twirp.InvalidArgument {
		t.Fatalf("error %v", err)
	}
	if secondHits.Load() != 0 {
		t.Fatalf("the second endpoint was asked %d times", secondHits.Load())
	}
	if migclient.NextEndpoint(c) != 0 {
		t.Fatalf("the client left an endpoint that answered")
	}
}

func TestClientAllEndpointsFail(t *testing.T) {
	sick := newIssuer(t)
	sick.setFail(mig.ErrCeiling)
	_, sickTS := serve(t, sick)
	dead := deadEndpoint(t)
	c := newClient(t, []string{dead, sickTS.URL})

	_, _, err := c.NextIDs(t.Context(), 1)
	twerr := twirpErr(t, err)
	if twerr.Code() != twirp.Unavailable || twerr.Meta(migv1.MetaRetryable) != "true" {
		t.Fatalf("error %v, want unavailable and retryable", err)
	}
	for _, want := range []string{"all 2 endpoints", dead, sickTS.URL, "watermark reached"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !errors.As(err, new(*net.OpError)) {
		t.Errorf("error %v does not wrap the dial error", err)
	}
}

func TestClientStopsWhenCallerGivesUp(t *testing.T) {
	lost1, hits1 := hangingEndpoint(t)
	lost2, hits2 := hangingEndpoint(t)
	c := newClient(t, []string{lost1.URL, lost2.URL}, migclient.WithTimeout(time.Minute))
	migclient.SetNextEndpoint(c, 0, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, _, err := c.NextIDs(ctx, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the caller's deadline", err)
	}
	if hits1.Load() != 1 || hits2.Load() != 0 {
		t.Fatalf("attempts %d, %d after the caller gave up; want 1, 0", hits1.Load(), hits2.Load())
	}
}

func TestClientRejectsBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  []uint64
	}{
		{"too few", []uint64{1, 2}},
		{"too many", []uint64{1, 2, 3, 4}},
		{"repeated", []uint64{1, 2, 2}},
		{"decreasing", []uint64{3, 2, 1}},
		{"sign bit", []uint64{1, 2, 1 << 63}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := proto.Marshal(&migv1.NextIDsResponse{Ids: tc.ids})
			if err != nil {
				t.Fatal(err)
			}
			liar, _ := counted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/protobuf")
				_, _ = w.Write(body)
			}))
			_, ts := serve(t, newIssuer(t))
			healthy, hits := counted(t, ts.Handler)
			c := newClient(t, []string{liar.URL, healthy.URL})
			migclient.SetNextEndpoint(c, 0, 0)
			if _, _, err := c.NextIDs(t.Context(), 3); !errors.Is(err, migclient.ErrBadAnswer) {
				t.Fatalf("error %v, want ErrBadAnswer", err)
			}
			if hits.Load() != 0 {
				t.Fatal("a bad answer was retried")
			}
		})
	}
}

func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, tc := range []struct {
		name                   string
		err                    error
		repeatable             bool
		wantAnswered, wantMove bool
	}{
		{"unavailable", twirp.NewError(twirp.Unavailable, "no worker ID held"), false, true, true},
		{"proxy 503, repeatable", twirp.NewError(twirp.Unavailable, "intermediary").WithMeta("http_error_from_intermediary", "true"), true, false, true},
		{"proxy 504, not repeatable", twirp.NewError(twirp.Unavailable, "intermediary").WithMeta("http_error_from_intermediary", "true"), false, false, false},
		{"invalid argument", twirp.InvalidArgumentError("count", "0 is not in 1..100000"), true, true, false},
		{"internal from server", twirp.InternalError("disk on fire"), true, true, false},
		{"dial error, not repeatable", twirp.InternalErrorWith(fmt.Errorf("failed to do request: %w", dial)), false, false, true},
		{"dns error, not repeatable", twirp.InternalErrorWith(&net.DNSError{Err: "no such host", Name: "x"}), false, false, true},
		{"reset, repeatable", twirp.InternalErrorWith(read), true, false, true},
		{"reset, not repeatable", twirp.InternalErrorWith(read), false, false, false},
		{"timeout, not repeatable", twirp.InternalErrorWith(context.DeadlineExceeded), false, false, false},
		{"timeout, repeatable", twirp.InternalErrorWith(context.DeadlineExceeded), true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fmt.Errorf("NextIDs http://x: %w", tc.err)
			answered, move := migclient.Classify(err, tc.repeatable)
			if answered != tc.wantAnswered || move != tc.wantMove {
				t.Fatalf("answered %v, failover %v; want %v, %v", answered, move, tc.wantAnswered, tc.wantMove)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoints []string
		opts      []migclient.Option
	}{
		{"no endpoints", nil, nil},
		{"empty endpoint", []string{""}, nil},
		{"bad scheme", []string{"ftp://x:1"}, nil},
		{"no host", []string{"http://"}, nil},
		{"query", []string{"http://x:1/?a=b"}, nil},
		{"twice", []string{"x:1", "http://x:1"}, nil},
		{"zero timeout", []string{"x:1"}, []migclient.Option{migclient.WithTimeout(0)}},
		{"nil http client", []string{"x:1"}, []migclient.Option{migclient.WithHTTPClient(nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := migclient.New(tc.endpoints, tc.opts...); !errors.Is(err, migclient.ErrConfig) {
				t.Fatalf("error %v, want ErrConfig", err)
			}
		})
	}
	c, err := migclient.New([]string{"127.0.0.1:1", "https://mig.example/prefix/"}, migclient.WithHTTPClient(http.DefaultClient))
	if err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
}

func TestClientFailsOverFromProxyError(t *testing.T) {
	proxy, proxyHits := counted(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>upstream connect error</html>", http.StatusBadGateway)
	}))
	_, healthy := serve(t, newIssuer(t))
	c := newClient(t, []string{proxy.URL, healthy.URL}, migclient.WithJSON())
	migclient.SetNextEndpoint(c, 0, 0)
	_, origin, err := c.NextIDs(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if origin.Endpoint != healthy.URL || proxyHits.Load() != 1 {
		t.Fatalf("answered by %s after %d proxy attempts", origin.Endpoint, proxyHits.Load())
	}
}
