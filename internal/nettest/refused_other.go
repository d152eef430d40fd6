//go:build !unix

package nettest

import "net"

// refused returns the port of a listener closed at once: refused, but
// not held (another process may take it).
func refused() (addr string, release func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = ln.Addr().String()
	return addr, func() {}, ln.Close()
}
