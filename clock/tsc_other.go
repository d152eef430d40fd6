//go:build !(linux && amd64)

package clock

// Only linux/amd64 checks deadlines on the time-stamp counter; elsewhere
// every check reads the Source's Mono.

func readTSC() uint64 { return 0 }

func readTSCOrdered() uint64 { return 0 }

func tscUsable() bool { return false }

func kernelUsesTSC() bool { return false }
