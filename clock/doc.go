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
//     worker ID) it runs slower by a bounded rate until the wall clock has
//     caught up; it follows steps forward, or slews them when configured.
//   - [Coarse] caches a Slewing reading in an atomic word, refreshed by one
//     goroutine, because reading the wall clock costs more (about 47 ns on
//     the reference machine) than the whole ID budget at 25 M IDs/s.
//   - [NTPMonitor] queries NTP servers and reports the wall clock's offset;
//     past a configured limit the clock is unsafe and the worker not ready.
package clock
