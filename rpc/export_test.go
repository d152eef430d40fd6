package rpc

import (
	"net/http"

	"github.com/migsvc/mig/clock"
)

// Test access to the client's failover state.

// NextEndpoint returns the index of the endpoint c tries first.
func NextEndpoint(c *Client) int { return int(c.next.Load()) }

// SetNextEndpoint makes c try endpoint i first.
func SetNextEndpoint(c *Client, i int) { c.next.Store(uint32(i)) }

// Classify is classify.
var Classify = classify

// DecodeNextIDs is decodeNextIDs.
var DecodeNextIDs = decodeNextIDs

// NewDefaultTransport is the Client's default transport.
func NewDefaultTransport() http.RoundTripper { return newDefaultTransport(clock.NewReal()) }

// NewTransportOn is the Client's default transport on src.
func NewTransportOn(src clock.Source) http.RoundTripper { return newDefaultTransport(src) }

// DialAddr is dialAddr.
var DialAddr = dialAddr
