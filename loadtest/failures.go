package loadtest

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/rpc/migclient"
)

// Failure counts the attempts that failed at one endpoint for one cause.
// A plain value.
type Failure struct {
	// Endpoint is the host:port the attempt went to ("" when the error
	// does not say).
	Endpoint string `json:"endpoint"`
	// Cause is what went wrong there: "connection refused", "connection
	// reset", "timeout", "no such host", "connection closed", a Twirp
	// code the server answered ("unavailable"), "bad answer", "redis
	// error", or "network error" and "other" for the rest.
	Cause string `json:"cause"`
	Count int64  `json:"count"`
}

// failureKey is a Failure's endpoint and cause.
type failureKey struct{ endpoint, cause string }

// Causes that are not Twirp codes.
const (
	causeRefused = "connection refused"
	causeReset   = "connection reset"
	causeClosed  = "connection closed"
	causeTimeout = "timeout"
	causeNoHost  = "no such host"
	causeNetwork = "network error"
)

// attemptFailures calls yield for each attempt that err, a failed call's
// error, says failed: the endpoint it went to and why. The Go client
// tries endpoints in turn and, when all fail, returns an error that
// joins each attempt's ("NextIDs http://h:p: ..."); a call that failed at
// once has one. Dial failures are left out when skipDial is set: the
// runner counts those as they happen (see dialTrace), failed over or
// not.
func attemptFailures(err error, skipDial bool, yield func(endpoint, cause string)) {
	for e := err; e != nil; {
		if m, ok := e.(interface{ Unwrap() []error }); ok {
			for _, a := range m.Unwrap() {
				attemptFailures(a, skipDial, yield)
			}
			return
		}
		e = errors.Unwrap(e)
	}
	if skipDial && isDial(err) {
		return
	}
	yield(endpointOf(err), causeOf(err))
}

// isDial reports whether err is a failure to connect to an address:
// what dialTrace sees. (A name that does not resolve is not: no address
// was tried.)
func isDial(err error) bool {
	var (
		op  *net.OpError
		dns *net.DNSError
	)
	return errors.As(err, &op) && op.Op == "dial" && !errors.As(err, &dns)
}

// dialTrace returns ctx with a trace that calls failed for every
// connection attempt that fails, with the address tried and why: the
// Go client moves on to the next endpoint after one, and the call
// succeeds there, so the call's error never shows it. net.Dialer calls
// the trace whichever HTTP transport dials.
func dialTrace(ctx context.Context, failed func(endpoint, cause string)) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectDone: func(_, addr string, err error) {
			if err != nil {
				failed(addr, causeOf(err))
			}
		},
	})
}

// endpointOf finds the host:port an attempt's error names: the URL of the
// HTTP request that failed, or the endpoint the Go client put before it.
func endpointOf(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			return hostPort(u)
		}
	}
	// "NextIDs http://127.0.0.1:7070: twirp error unavailable: ..."
	for _, field := range strings.Fields(err.Error()) {
		field = strings.TrimSuffix(field, ":")
		if !strings.Contains(field, "://") {
			continue
		}
		if u, perr := url.Parse(field); perr == nil && u.Host != "" {
			return hostPort(u)
		}
		break
	}
	return ""
}

// hostPort is u's host and port, the scheme's default port when it has
// none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// causeOf names what went wrong in one attempt.
func causeOf(err error) string {
	var (
		dns   *net.DNSError
		nerr  net.Error
		twerr twirp.Error
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return causeRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return causeReset
	case errors.As(err, &dns) && dns.IsNotFound:
		return causeNoHost
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return causeTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return causeClosed
	case errors.Is(err, migclient.ErrBadAnswer):
		return "bad answer"
	case errors.Is(err, ErrRESP):
		return "redis error"
	case nerr != nil, dns != nil:
		return causeNetwork
	case errors.As(err, &twerr):
		return string(twerr.Code())
	}
	return "other"
}

// sortedFailures lists m, the most frequent first.
func sortedFailures(m map[failureKey]int64) []Failure {
	out := make([]Failure, 0, len(m))
	for k, n := range m {
		out = append(out, Failure{Endpoint: k.endpoint, Cause: k.cause, Count: n})
	}
	slices.SortFunc(out, func(a, b Failure) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Cause, b.Cause))
	})
	return out
}
