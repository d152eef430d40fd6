//go:build !unix

package loadtest

// cpuUsage is not measured on this system.
func cpuUsage() (usage, bool) { return usage{}, false }
