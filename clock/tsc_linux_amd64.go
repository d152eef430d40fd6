package clock

import (
	"bytes"
	"os"
)

// readTSC returns the time-stamp counter, read by a plain RDTSC: possibly
// up to tscReorder before the instructions ahead of it complete (see
// [Deadline.Live]).
func readTSC() uint64

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// readTSCOrdered returns the time-stamp counter, read by RDTSCP: after
// every earlier instruction has executed. Calibration uses it, where the
// cost does not matter and a reading must not run ahead.
func readTSCOrdered() uint64

// tscUsable reports whether the processor has RDTSCP and an invariant
// time-stamp counter (one that runs at a constant rate in every power
// state): CPUID leaf 0x80000001 EDX bit 27 and leaf 0x80000007 EDX bit 8.
func tscUsable() bool {
	maxExt, _, _, _ := cpuid(0x80000000, 0)
	if maxExt < 0x80000007 {
		return false
	}
	_, _, _, edx1 := cpuid(0x80000001, 0)
	_, _, _, edx7 := cpuid(0x80000007, 0)
	return edx1&(1<<27) != 0 && edx7&(1<<8) != 0
}

const clocksourcePath = "/sys/devices/system/clocksource/clocksource0/current_clocksource"

// kernelUsesTSC reports whether the kernel's current clocksource, from
// which it computes CLOCK_MONOTONIC, is the time-stamp counter.
func kernelUsesTSC() bool {
	b, err := os.ReadFile(clocksourcePath)
	return err == nil && string(bytes.TrimSpace(b)) == "tsc"
}
