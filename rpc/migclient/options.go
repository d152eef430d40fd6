package migclient

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Option configures a Client in New. Options are plain functions,
// applied once; one may be passed to any number of New calls,
// concurrently.
type Option func(*options)

type options struct {
	json    bool
	timeout time.Duration
	http    *http.Client
	remotes []remote
	errs    []error
}

// remote is one WithRemote.
type remote struct {
	name      string
	endpoints []string
}

// WithJSON makes the client speak JSON instead of protobuf: slower and
// larger, but readable on the wire.
func WithJSON() Option { return func(o *options) { o.json = true } }

// WithTimeout bounds each attempt (d > 0; default DefaultTimeout). A call
// makes at most one attempt per endpoint, so it may take up to
// len(endpoints)*d unless ctx is done sooner.
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: timeout %v is not positive", ErrConfig, d))
			return
		}
		o.timeout = d
	}
}

// WithHTTPClient makes the client send its requests through c, for TLS
// settings or a transport of the caller's. By default the client uses
// net/http's Transport, tuned for many small calls (see the package
// documentation). c should have no Timeout of its own shorter than
// WithTimeout's; redirects are never followed.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) {
		if c == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: nil http.Client", ErrConfig))
			return
		}
		o.http = c
	}
}

// WithRemote adds the endpoints of another datacenter, named dc (the
// name is for errors and logs; it need not match the servers' --dc).
// NextIDs and Decode go to a remote datacenter only when every endpoint
// of the client's own has failed, and to the remote datacenters in the
// order of the WithRemote options: nearest first. Sequence calls go to
// the node that serves the uid, in whichever datacenter it is, and ask
// remote endpoints only when the client's own cannot say which node that
// is.
func WithRemote(dc string, endpoints ...string) Option {
	return func(o *options) {
		switch {
		case strings.TrimSpace(dc) == "":
			o.errs = append(o.errs, fmt.Errorf("%w: a remote datacenter without a name", ErrConfig))
			return
		case len(endpoints) == 0:
			o.errs = append(o.errs, fmt.Errorf("%w: remote datacenter %s has no endpoints", ErrConfig, dc))
			return
		}
		for _, r := range o.remotes {
			if r.name == dc {
				o.errs = append(o.errs, fmt.Errorf("%w: remote datacenter %s given twice", ErrConfig, dc))
				return
			}
		}
		o.remotes = append(o.remotes, remote{name: dc, endpoints: endpoints})
	}
}

// parseEndpoint returns the base URL of endpoint e.
func parseEndpoint(e string) (string, error) {
	s := strings.TrimSpace(e)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: endpoint %q is not host:port or an http(s) base URL", ErrConfig, e)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}
