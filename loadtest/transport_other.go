//go:build !unix

package loadtest

import "net"

// socketIdle cannot look at the socket here: it says yes, and a
// connection the server closed shows as an error of the call that reuses
// it, as it may with http.Transport.
func socketIdle(net.Conn) bool { return true }
