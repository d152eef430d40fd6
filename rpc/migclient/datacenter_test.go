package migclient_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc/migclient"
	"github.com/migsvc/mig/workerid"
)

// dcServers starts n servers of datacenter dc, workers from first on, and
// returns their issuers and URLs.
func dcServers(t *testing.T, dc string, first uint32, n int) ([]*testIssuer, []string) {
	t.Helper()
	var issuers []*testIssuer
	var urls []string
	for i := range n {
		is := newIssuerIn(t, dc, first+uint32(i))
		_, ts := serve(t, is)
		issuers = append(issuers, is)
		urls = append(urls, ts.URL)
	}
	return issuers, urls
}

func calls(issuers []*testIssuer) (n int64) {
	for _, is := range issuers {
		n += is.calls.Load()
	}
	return n
}

func setFail(issuers []*testIssuer, err error) {
	for _, is := range issuers {
		is.setFail(err)
	}
}

// TestRemoteOnlyWhenLocalFails: IDs come from the client's own
// datacenter while any of its endpoints answers; when every one fails,
// from the first remote datacenter that answers, in the order given.
// A datacenter found down is skipped for retryDown, but for one call
// that tries it again, and served from as soon as it answers.
func TestRemoteOnlyWhenLocalFails(t *testing.T) {
	tokyo, tokyoURLs := dcServers(t, "tokyo", 0, 2)
	osaka, osakaURLs := dcServers(t, "osaka", 16, 2)
	nagoya, nagoyaURLs := dcServers(t, "nagoya", 32, 1)
	c := newClient(t, tokyoURLs, migclient.WithRemote("osaka", osakaURLs...), migclient.WithRemote("nagoya", nagoyaURLs...))
	src := clock.NewManual(t0)
	migclient.SetClock(c, src)

	from := func(want string) {
		t.Helper()
		ids, o, err := c.NextIDs(t.Context(), 2)
		if err != nil {
			t.Fatalf("want IDs from %s: %v", want, err)
		}
		if o.Datacenter != want || len(ids) != 2 {
			t.Fatalf("%d IDs from %s (%s), want 2 from %s", len(ids), o.Datacenter, o.Endpoint, want)
		}
	}
	for range 10 {
		from("tokyo")
	}
	if n := calls(osaka) + calls(nagoya); n != 0 {
		t.Fatalf("remote datacenters asked %d times while tokyo answered", n)
	}
	// One tokyo worker unavailable: the other one serves.
	tokyo[0].setFail(workerid.ErrNotHeld)
	migclient.SetNextEndpoint(c, 0, 0)
	from("tokyo")

	// Every tokyo worker unavailable: osaka serves, and tokyo is left
	// alone until retryDown has passed.
	setFail(tokyo, workerid.ErrNotHeld)
	from("osaka")
	before := calls(tokyo)
	for range 5 {
		from("osaka")
	}
	if n := calls(tokyo) - before; n != 0 {
		t.Fatalf("tokyo, down, asked %d times within retryDown", n)
	}
	src.Advance(migclient.RetryDown)
	from("osaka") // this call tried tokyo again, which is still down
	if n := calls(tokyo) - before; n != 2 {
		t.Fatalf("tokyo asked %d times after retryDown, want 2 (one call, both workers)", n)
	}
	from("osaka")
	if n := calls(tokyo) - before; n != 2 {
		t.Fatalf("tokyo asked again right after the retry failed")
	}

	// osaka down too: nagoya, the last resort.
	setFail(osaka, mig.ErrCeiling)
	from("nagoya")

	// tokyo back: the next call that tries it stays there.
	setFail(tokyo, nil)
	src.Advance(migclient.RetryDown)
	from("tokyo")
	for range 5 {
		from("tokyo")
	}

	// Everything down: unavailable, with every endpoint's error.
	setFail(tokyo, workerid.ErrNotHeld)
	setFail(nagoya, workerid.ErrNotHeld)
	_, _, err := c.NextIDs(t.Context(), 1)
	if !strings.Contains(err.Error(), "all 5 endpoints") {
		t.Fatalf("error %v, want one from all 5 endpoints", err)
	}
	// A datacenter down is still tried when every other one is.
	setFail(tokyo, nil)
	from("tokyo")
}

// TestRemoteDeadEndpoints: a datacenter whose endpoints refuse
// connections fails over like one that answers unavailable.
func TestRemoteDeadEndpoints(t *testing.T) {
	_, osakaURLs := dcServers(t, "osaka", 16, 1)
	c := newClient(t, []string{deadEndpoint(t), deadEndpoint(t)}, migclient.WithRemote("osaka", osakaURLs...))
	for range 3 {
		_, o, err := c.NextIDs(t.Context(), 1)
		if err != nil || o.Datacenter != "osaka" {
			t.Fatalf("from %q: %v", o.Datacenter, err)
		}
		if _, err := c.Decode(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWithRemoteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []migclient.Option
		want string
	}{
		{"no name", []migclient.Option{migclient.WithRemote(" ", "y:1")}, "without a name"},
		{"no endpoints", []migclient.Option{migclient.WithRemote("osaka")}, "osaka has no endpoints"},
		{"twice", []migclient.Option{migclient.WithRemote("osaka", "y:1"), migclient.WithRemote("osaka", "z:1")}, "osaka given twice"},
		{"local endpoint again", []migclient.Option{migclient.WithRemote("osaka", "http://x:1")}, "http://x:1 listed twice"},
		{"bad endpoint", []migclient.Option{migclient.WithRemote("osaka", "ftp://y:1")}, `"ftp://y:1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := migclient.New([]string{"x:1"}, tc.opts...)
			if !errors.Is(err, migclient.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}
}

// TestOneCallRetriesADownDatacenter: after retryDown, of many concurrent
// calls one tries the down datacenter again; the others go on to the
// next.
func TestOneCallRetriesADownDatacenter(t *testing.T) {
	tokyo, tokyoURLs := dcServers(t, "tokyo", 0, 2)
	_, osakaURLs := dcServers(t, "osaka", 16, 1)
	c := newClient(t, tokyoURLs, migclient.WithRemote("osaka", osakaURLs...))
	src := clock.NewManual(t0)
	migclient.SetClock(c, src)
	setFail(tokyo, workerid.ErrNotHeld)
	if _, o, err := c.NextIDs(t.Context(), 1); err != nil || o.Datacenter != "osaka" {
		t.Fatalf("from %q: %v", o.Datacenter, err)
	}
	before := calls(tokyo)
	src.Advance(migclient.RetryDown)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, o, err := c.NextIDs(t.Context(), 1); err != nil || o.Datacenter != "osaka" {
				t.Errorf("from %q: %v", o.Datacenter, err)
			}
		})
	}
	wg.Wait()
	if n := calls(tokyo) - before; n != 2 {
		t.Fatalf("tokyo asked %d times by 16 concurrent calls, want 2 (one call, both workers)", n)
	}
}
