package migclient

import "github.com/migsvc/mig/clock"

// Test access to the client's failover state.

// NextEndpoint returns the index of the endpoint c tries first in its own
// datacenter.
func NextEndpoint(c *Client) int { return int(c.dcs[0].next.Load()) }

// SetNextEndpoint makes c try endpoint i of datacenter dc (0: its own,
// then the remote ones in order) first there.
func SetNextEndpoint(c *Client, dc, i int) { c.dcs[dc].next.Store(uint32(i)) }

// SetClock makes c read time from src.
func SetClock(c *Client, src clock.Source) { c.src = src }

// RetryDown is retryDown.
const RetryDown = retryDown

// Classify is classify.
var Classify = classify
