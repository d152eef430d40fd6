package migclient

import (
	"net"
	"net/http"
	"time"
)

// Connection pooling of the default transport.
const (
	// maxIdlePerHost is how many idle connections the client keeps to
	// each endpoint. http.DefaultTransport keeps 2: concurrent callers
	// beyond two would open a new connection for nearly every call, and
	// leave it in TIME_WAIT after.
	maxIdlePerHost = 64
	// idleTimeout closes a connection idle this long. The server's own
	// (mig serve's) is 2 minutes: the client closes first, so it never
	// sends on a connection the server is closing.
	idleTimeout = 30 * time.Second
	// maxDialTimeout bounds a connection's setup within an attempt. A
	// live node accepts within a round trip, even across datacenters; a
	// host that does not answer within a second is down or cut off, and
	// the call moves on to the next endpoint (a refused dial is safe to
	// move on from) instead of spending its whole attempt waiting.
	maxDialTimeout = time.Second
)

// newTransport returns the client's default transport: net/http's,
// with the proxy settings of the environment, HTTP/2 where an https://
// endpoint (a load balancer) offers it, and these limits. Each phase of
// an attempt (dial, TLS handshake, waiting for the answer's header) is
// bounded by the attempt's timeout as well as by its context, so the
// transport stays bounded whoever calls it.
func newTransport(timeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: min(timeout, maxDialTimeout), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // no limit across endpoints; maxIdlePerHost bounds each
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       idleTimeout,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
}
