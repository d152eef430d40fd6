package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twitchtv/twirp"

	"github.com/migsvc/mig/rpc/migclient"
)

func TestAttemptFailures(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://10.0.0.1:7070/twirp/mig.v1.IDService/NextIDs",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	reset := &url.Error{Op: "Post", URL: "http://10.0.0.2/twirp/mig.v1.IDService/NextIDs",
		Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	noHost := &url.Error{Op: "Post", URL: "https://nohost.invalid/twirp/x",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nohost.invalid", IsNotFound: true}}}
	timeout := &url.Error{Op: "Post", URL: "http://10.0.0.3:7070/twirp/x", Err: context.DeadlineExceeded}
	answered := fmt.Errorf("NextIDs http://10.0.0.4:7070: %w", twirp.NewError(twirp.Unavailable, "no worker ID held"))
	wrapped := func(e error) error {
		return fmt.Errorf("NextIDs %s: %w", "http://x", twirp.InternalErrorWith(e))
	}
	for _, tc := range []struct {
		name     string
		err      error
		skipDial bool
		want     []Failure
	}{
		{"refused", wrapped(refused), false, []Failure{{"10.0.0.1:7070", causeRefused, 1}}},
		{"refused, counted by the trace", wrapped(refused), true, nil},
		{"reset, default port", wrapped(reset), true, []Failure{{"10.0.0.2:80", causeReset, 1}}},
		{"no such host: no address was dialed", wrapped(noHost), true, []Failure{{"nohost.invalid:443", causeNoHost, 1}}},
		{"timeout", wrapped(timeout), true, []Failure{{"10.0.0.3:7070", causeTimeout, 1}}},
		{"answered", answered, true, []Failure{{"10.0.0.4:7070", "unavailable", 1}}},
		{"every endpoint failed", twirp.WrapError(twirp.NewError(twirp.Unavailable, "NextIDs failed on all 3 endpoints"),
			errors.Join(fmt.Errorf("NextIDs http://10.0.0.1:7070: %w", twirp.InternalErrorWith(refused)), answered, wrapped(timeout))), false,
			[]Failure{{"10.0.0.1:7070", causeRefused, 1}, {"10.0.0.3:7070", causeTimeout, 1}, {"10.0.0.4:7070", "unavailable", 1}}},
		{"bad answer", fmt.Errorf("%w: http://10.0.0.5:7070: 2 IDs for a count of 1", migclient.ErrBadAnswer), true, []Failure{{"10.0.0.5:7070", "bad answer", 1}}},
		{"redis", fmt.Errorf("redis://127.0.0.1:6379: %w: -ERR nope", ErrRESP), true, []Failure{{"127.0.0.1:6379", "redis error", 1}}},
		{"nameless", errors.New("something"), true, []Failure{{"", "other", 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[failureKey]int64{}
			attemptFailures(tc.err, tc.skipDial, func(ep, cause string) { m[failureKey{ep, cause}]++ })
			got := sortedFailures(m)
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("%v:\n got %+v\nwant %+v", tc.err, got, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{first: 10 * time.Millisecond, most: 50 * time.Millisecond, rng: rand.New(rand.NewPCG(1, 2))}
	for round := range 2 {
		for i, bound := range []time.Duration{10, 20, 40, 50, 50, 50} {
			bound *= time.Millisecond
			if d := b.next(); d < bound/2 || d > bound {
				t.Fatalf("round %d, failure %d: waited %v, want %v..%v", round, i+1, d, bound/2, bound)
			}
		}
		b.reset() // a success: the next failure waits the first wait again
	}
}
