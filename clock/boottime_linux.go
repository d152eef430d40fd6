//go:build linux

package clock

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bootNanos reads CLOCK_BOOTTIME: the monotonic clock plus the time the
// host was suspended. ok is false where the kernel does not know it
// (before Linux 2.6.39).
//
// It is a raw system call: Go reads only its own clocks through the
// vDSO. Raw, because clock_gettime neither blocks nor sleeps: the
// goroutine keeps its P, so the scheduler does not run other goroutines
// between this reading and the caller's next one (see [Real.Now]).
func bootNanos() (ns int64, ok bool) {
	var ts unix.Timespec
	if _, _, e := syscall.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_BOOTTIME, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0, false
	}
	return ts.Nano(), true
}
