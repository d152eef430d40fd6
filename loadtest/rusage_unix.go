//go:build unix

package loadtest

import (
	"syscall"
	"time"
)

// cpuUsage returns the user and system CPU time this process has used.
func cpuUsage() (usage, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}, false
	}
	return usage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano())}, true
}
