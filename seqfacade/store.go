package seqfacade

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store persists the max_seq of every section, a group of sections at a
// time (the StoreSvr role). Implementations are safe for concurrent use.
type Store interface {
	// Load returns group g's persisted max_seqs, one per section of the
	// group, and the revision to expect in the next Save. A group never
	// written has all zeros and revision 0. The read must be linearizable:
	// it sees every write that completed before it began. With a proof,
	// the read happens only if every comparison holds, atomically with
	// them (else an error wrapping ErrNotOwner). Errors: one wrapping
	// ErrCorrupt for an unreadable value, or the store's own.
	Load(ctx context.Context, g int, proof []clientv3.Cmp) (GroupState, error)
	// Save replaces group g's max_seqs if, atomically, the group is still
	// at revision expect and every comparison in proof holds; it returns
	// the new revision. It returns an error wrapping ErrNotOwner when a
	// comparison failed (nothing was written): also wrapping
	// ErrProofFailed when the revision held and the proof did not; one
	// wrapping ErrCorrupt for a first write of a group whose key was
	// deleted after it was written. Any other error leaves the outcome
	// unknown: the write may or may not have happened, or happen later.
	Save(ctx context.Context, g int, maxSeqs []uint64, expect int64, proof []clientv3.Cmp) (int64, error)
}

// ErrProofFailed is wrapped (with ErrNotOwner) by a Save refused because
// its proof failed while the group's revision held: the group is
// unchanged, and the writer may still own it under a newer proof.
var ErrProofFailed = errors.New("seqfacade: ownership proof failed")

// GroupState is a group's persisted state.
type GroupState struct {
	// MaxSeqs holds each section's max_seq, in section order.
	MaxSeqs []uint64
	// Revision identifies the persisted value (etcd's ModRevision of the
	// group's key; 0 when it was never written).
	Revision int64
}
