//go:build !linux

package clock

// bootNanos reports that there is no CLOCK_BOOTTIME here: [Real] reads
// Go's monotonic clock.
func bootNanos() (ns int64, ok bool) { return 0, false }
