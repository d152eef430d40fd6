//go:build unix

package loadtest

import (
	"errors"
	"net"
	"syscall"
)

// socketIdle reports whether nc's socket is open with nothing to read:
// a peek that does not wait finds no data (EAGAIN), where a closed one
// finds end of file and one the server wrote to unasked finds bytes.
func socketIdle(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = errors.Is(err, syscall.EAGAIN)
		return true // never wait for the socket to turn readable
	})
	return err == nil && idle
}
