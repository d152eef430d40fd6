package nettest_test

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/migsvc/mig/internal/nettest"
)

// TestRefusedAddr: connections are refused, and the port cannot be
// listened on while the test holds it.
func TestRefusedAddr(t *testing.T) {
	addr := nettest.RefusedAddr(t)
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("another listener took %s", addr)
	}
}
