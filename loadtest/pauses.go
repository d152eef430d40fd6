package loadtest

import (
	"runtime"
	"sync"
	"time"

	"github.com/migsvc/mig/clock"
)

// Pauses is what [MeasurePauses] saw: how often a thread that never
// blocks was kept off its core all the same. A plain value.
type Pauses struct {
	Over1ms, Over3ms int           // gaps between two clock readings longer than 1 ms, 3 ms
	Longest          time.Duration // the longest gap
	CoreSeconds      float64       // threads × seconds watched
}

// MeasurePauses measures the floor under every tail latency a machine can
// show: threads threads, each locked to an OS thread, read src's
// monotonic clock in a loop for d and count the gaps between two
// readings, the times the hypervisor or the kernel's own work kept the
// thread off its core. It returns when they are done.
//
// Such a pause stops whatever runs on that core, client or server. At
// 80% load, the requests queued behind a pause of p take p/(1-0.8) = 5p
// to drain, so a machine that pauses a busy core for 3 ms or more about
// once every few seconds cannot show a p99.9 under 3 ms there, whatever
// the server does: docs/benchmarks.md has the arithmetic and the
// figures. Nothing else should run meanwhile: it shows as pauses.
func MeasurePauses(src clock.Source, threads int, d time.Duration) Pauses {
	seen := make([]Pauses, threads)
	var wg sync.WaitGroup
	for k := range seen {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			p := &seen[k]
			last := src.Mono()
			for end := last + d; last < end; {
				now := src.Mono()
				if gap := now - last; gap > time.Millisecond {
					p.Over1ms++
					if gap > 3*time.Millisecond {
						p.Over3ms++
					}
					p.Longest = max(p.Longest, gap)
				}
				last = now
			}
		})
	}
	wg.Wait()
	all := Pauses{CoreSeconds: float64(threads) * d.Seconds()}
	for _, p := range seen {
		all.Over1ms += p.Over1ms
		all.Over3ms += p.Over3ms
		all.Longest = max(all.Longest, p.Longest)
	}
	return all
}
