//go:build linux

package clock

import "golang.org/x/sys/unix"

// bootNanos reads CLOCK_BOOTTIME: the monotonic clock plus the time the
// host was suspended. ok is false where the kernel does not know it
// (before Linux 2.6.39).
func bootNanos() (ns int64, ok bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, false
	}
	return ts.Nano(), true
}
