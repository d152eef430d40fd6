// Package clock owns time as MIG's generators see it.
//
// Nothing else in MIG calls time.Now, starts timers or sleeps: logic takes a
// [Source] and tests drive a [Manual] one, which can step its wall clock back
// and forth while monotonic time goes on, as NTP does to a real host.
//
// Three layers sit on a Source:
//
//   - [Slewing] is the ID clock. It advances with monotonic time and never
//     returns a smaller value. When it finds the wall clock behind it (an NTP
//     step back, or a watermark inherited from a previous holder of the
//     worker ID, given to [Slewing.Raise]) it runs slower, at (1-BackRate)
//     of monotonic speed, until the wall clock has caught up; it follows
//     steps forward, or slews them at (1+ForwardRate) when configured
//     ([SlewConfig]). Steps are counted in [SlewStatus]. With HoldForward
//     it holds a step forward until a check confirms it: the NTP monitor
//     of package clock/ntp measures the wall clock the ID clock follows
//     ([Slewing.Basis]), and releases the step, or keeps it held when NTP
//     says it was wrong ([Slewing.Settle]); a wrong step then never
//     reaches the IDs.
//   - [Coarse] caches a Slewing reading in an atomic word, refreshed by one
//     goroutine, because reading the wall clock costs more (about 47 ns on
//     the reference machine) than the whole ID budget at 25 M IDs/s. Its
//     value lags by about one resolution; raise the clock through
//     [Coarse.Raise] so the cache moves at once.
//   - [Deadline] is a moment of monotonic time to stop by (a lease's
//     self-fencing deadline), checked at request time on every call of
//     a hot path by reading the monotonic clock.
//
// Across restarts the wall clock is not trusted for monotonicity: the
// persisted watermark, given to Raise, is. Checking the wall clock against
// NTP is package clock/ntp's, so that importing clock does not link an NTP
// client.
//
// # Pauses
//
// A lease's deadline ([Deadline], and through it every lease and claim of
// MIG) rests on one argument: the holder stops by its deadline on its own
// monotonic clock, which runs no slower than the clock of etcd's leader
// (the margin covers rate error), and every value is checked against the
// deadline by reading that clock after it is taken. A pause of the holder
// keeps that argument intact when its monotonic clock counts the pause:
// the first check after it reads a clock past the deadline and refuses.
// On Linux the monotonic time of [Real] is CLOCK_BOOTTIME, so the
// argument survives:
//
//   - stop-the-world garbage collection, SIGSTOP, a process or thread
//     descheduled for any time, an overloaded host;
//   - the host suspended to RAM or disk (CLOCK_MONOTONIC, Go's own
//     monotonic clock, stops meanwhile: that is why Real does not use it
//     on Linux);
//   - a VM paused, frozen, snapshotted or migrated, only if the guest's
//     CLOCK_BOOTTIME has advanced by the pause when it resumes, as it does
//     where the hypervisor keeps the guest's clocksource counting host
//     time.
//
// It does not survive a pause the clock does not count: a VM whose clock
// resumes where it stopped (NTP then steps the wall clock, which
// monotonic time ignores), a process restored from a checkpoint (CRIU)
// onto another boot or host, whose CLOCK_BOOTTIME has nothing to do with
// the first one's, or, on other systems, a suspend that Go's monotonic
// clock does not count. Such a holder may act after its successor took
// over: IDs stay unique (a new holder starts above the persisted
// watermark) but may go backwards for their worker ID, and a sequence
// may be read going back.
package clock
