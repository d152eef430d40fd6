// Package nettest gives tests network addresses with a known behaviour.
package nettest

import "testing"

// RefusedAddr returns a loopback host:port on which connections are
// refused for the rest of the test: the port stays taken (see the
// platform's refused), so that no other process, another package's test
// server among them, can start listening on it meanwhile, as one could
// on the port of a listener closed at once.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	addr, release, err := refused()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return addr
}
