package seqfacade

import (
	"errors"
	"fmt"

	"github.com/migsvc/mig/seqfacade/route"
)

// Errors returned by this package, wrapped with detail; test them with
// errors.Is.
var (
	// ErrConfig is wrapped by every configuration error.
	ErrConfig = errors.New("seqfacade: invalid configuration")
	// ErrMismatch is returned by Start when the configuration disagrees
	// with what etcd records for the cluster (section size, group size or
	// uid limit): serving under other values could hand a uid a sequence
	// below one it already had.
	ErrMismatch = errors.New("seqfacade: configuration disagrees with the cluster")
	// ErrInvalidUID is returned for uid 0 or a uid at or beyond the uid
	// limit. Nothing is consumed.
	ErrInvalidUID = errors.New("seqfacade: invalid uid")
	// ErrDuplicateUID is returned when a batch names a uid twice. Nothing
	// is consumed.
	ErrDuplicateUID = errors.New("seqfacade: uid repeated in a batch")
	// ErrBatchTooLarge is returned for a batch of more than
	// Config.MaxBatch uids. Nothing is consumed.
	ErrBatchTooLarge = errors.New("seqfacade: batch too large")
	// ErrUnavailable means the node cannot prove a value would be safe to
	// hand out right now: it is registering, a group is activating, it
	// cannot confirm the routing table, etcd does not answer, or it is
	// closed. Nothing
	// unsafe was handed out; the caller should answer "unavailable" and
	// let its client retry, here or elsewhere.
	ErrUnavailable = errors.New("seqfacade: unavailable")
	// ErrNotOwner means this node does not serve the group. A call for a
	// uid whose group the routing table gives to another node returns a
	// *NotOwnerError, which matches
	// ErrNotOwner (and not ErrUnavailable) and carries the table: the
	// caller should send the call to the owner it names. It also means a
	// max_seq write was refused because its proof failed: this node's
	// claim on the group is gone, or the group's key changed under it.
	// The node unloads the group at once; callers of Next see that case
	// wrapped together with ErrUnavailable: retrying reloads the group,
	// or finds that another node serves it.
	ErrNotOwner = errors.New("seqfacade: not the owner of the group")
	// ErrClosed is returned, wrapped together with ErrUnavailable, after
	// Close.
	ErrClosed = errors.New("seqfacade: node closed")
	// ErrCorrupt means a group's persisted value cannot be read. The node
	// refuses to serve that group rather than guess a max_seq; an operator
	// must repair the key.
	ErrCorrupt = errors.New("seqfacade: persisted max_seq unreadable")
	// ErrExhausted means a uid's section has handed out values up to
	// MaxSeq: its sequences cannot grow any more.
	ErrExhausted = errors.New("seqfacade: sequence space exhausted")
	// ErrNotHome means the uid is served by another datacenter's own
	// store (Config.HomeOnly): see NotHomeError. Nothing is consumed.
	ErrNotHome = errors.New("seqfacade: uid served by another datacenter's store")

	// ErrInvalidHandOff: a request for direct releases (Node.HandOff)
	// names no group, too many, one twice, or one out of range.
	ErrInvalidHandOff = errors.New("seqfacade: invalid handoff request")
)

// NotHomeError is returned by a node whose store is its datacenter's own
// (Config.HomeOnly) for a uid whose group has its home in another
// datacenter, whose own store serves it: this node never does, so the
// caller must ask that datacenter. It matches ErrNotHome.
type NotHomeError struct {
	Group      int
	Datacenter string // the group's home
}

func (e *NotHomeError) Error() string {
	return fmt.Sprintf("%v: group %d is served by datacenter %s's sequence store, not this datacenter's", ErrNotHome, e.Group, e.Datacenter)
}

// Is reports whether target is ErrNotHome.
func (e *NotHomeError) Is(target error) bool { return target == ErrNotHome }

// NotOwnerError is returned for a call on a uid whose group the routing
// table gives to another node. It matches
// ErrNotOwner with errors.Is; errors.As finds it. Routing is the node's
// table, to hand to the client so that it goes straight to the owner (one
// extra round trip) and routes later calls itself. A plain value; its
// Routing is shared, read-only.
type NotOwnerError struct {
	// Group is the group of the uid asked for.
	Group int
	// Owner is the node that the table gives the group to, and Address
	// where clients reach it ("" if it published none).
	Owner, Address string
	// Routing is the table this node answered from.
	Routing route.Table
}

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("%v: group %d is served by node %s at %q (routing version %d)", ErrNotOwner, e.Group, e.Owner, e.Address, e.Routing.Version)
}

// Is reports whether target is ErrNotOwner.
func (e *NotOwnerError) Is(target error) bool { return target == ErrNotOwner }
