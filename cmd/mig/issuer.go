package main

import (
	"fmt"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/workerid"
)

// clockGuard is the worker as the server sees it when NTP is checked: it
// refuses to issue while the NTP monitor says the wall clock is too far
// from NTP time. Safe for concurrent use.
//
// The refusal costs availability, not safety: uniqueness never rests on
// the wall clock (the ID clock never goes back, and a new holder starts
// above the persisted watermark). What an unsafe clock breaks is the
// promise that IDs are k-sorted by real time across workers, so the worker
// stops until its host's clock is corrected.
type clockGuard struct {
	*workerid.Worker
	ntp *clock.NTPMonitor
}

var _ rpc.IDIssuer = clockGuard{}

// NextN implements rpc.IDIssuer: an error wrapping rpc.ErrClockUnsafe,
// which the server answers with unavailable, while the clock is unsafe.
func (g clockGuard) NextN(n int) (mig.Batch, error) {
	if !g.ntp.Safe() {
		return mig.Batch{}, clockUnsafeError(g.ntp.Status())
	}
	return g.Worker.NextN(n)
}

// clockUnsafeError says why st makes the clock unsafe; it wraps
// rpc.ErrClockUnsafe, or is nil when the clock is safe.
func clockUnsafeError(st clock.NTPStatus) error {
	if st.Safe {
		return nil
	}
	return fmt.Errorf("%w: NTP server %s puts the wall clock %v off (NTP time minus wall clock), beyond the limit of %v",
		rpc.ErrClockUnsafe, st.Server, st.Offset, st.MaxOffset)
}
