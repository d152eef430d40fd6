// Package ntp checks the host's wall clock against NTP servers
// (github.com/beevik/ntp): a [Monitor] queries them periodically, reports
// the offset for metrics and health, and calls the clock unsafe past a
// configured limit, at which a worker stops issuing IDs
// (workerid.Config.ClockCheck) and reports not ready.
//
// It only observes: the host's NTP daemon corrects the clock, and
// clock.Slewing absorbs the steps it makes. It is a package of its own so
// that importing package clock, as a light client does, does not link an
// NTP client.
package ntp
