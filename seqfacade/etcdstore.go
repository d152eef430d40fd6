package seqfacade

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdStore keeps each group's max_seqs in one etcd key,
// <prefix>/seq/groups/<group as 8 hex digits>, encoded by encodeGroup.
// Keys sort in group order, so a range of groups is a range of keys.
// Safe for concurrent use.
type etcdStore struct {
	cli     *clientv3.Client
	lay     layout
	prefix  string
	timeout time.Duration
}

var _ Store = (*etcdStore)(nil)

func newEtcdStore(cli *clientv3.Client, cfg Config) *etcdStore {
	return &etcdStore{cli: cli, lay: newLayout(cfg), prefix: cfg.Prefix, timeout: cfg.RequestTimeout}
}

func groupKey(prefix string, g int) string { return fmt.Sprintf("%s/seq/groups/%08x", prefix, g) }

// Load implements Store with a linearizable Get, in a transaction with
// the proof when there is one.
func (s *etcdStore) Load(ctx context.Context, g int, proof []clientv3.Cmp) (GroupState, error) {
	n := s.lay.sectionsIn(g)
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := groupKey(s.prefix, g)
	tr, err := s.cli.Txn(cctx).If(proof...).Then(clientv3.OpGet(key)).Commit()
	if err != nil {
		return GroupState{}, fmt.Errorf("reading %s: %w", key, err)
	}
	if !tr.Succeeded {
		return GroupState{}, fmt.Errorf("%w: reading %s: %w", ErrNotOwner, key, ErrProofFailed)
	}
	kvs := tr.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return GroupState{MaxSeqs: make([]uint64, n)}, nil
	}
	m, err := decodeGroup(kvs[0].Value, n)
	if err != nil {
		return GroupState{}, fmt.Errorf("%s: %w", key, err)
	}
	return GroupState{MaxSeqs: m, Revision: kvs[0].ModRevision}, nil
}

// Save implements Store with one transaction: the group key's ModRevision
// must still be expect (0: absent) and every proof comparison must hold.
func (s *etcdStore) Save(ctx context.Context, g int, maxSeqs []uint64, expect int64, proof []clientv3.Cmp) (int64, error) {
	key := groupKey(s.prefix, g)
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", expect)}, proof...)
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tr, err := s.cli.Txn(cctx).
		If(cmps...).
		Then(clientv3.OpPut(key, string(encodeGroup(maxSeqs)))).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", key, err)
	}
	if tr.Succeeded {
		return tr.Header.Revision, nil
	}
	var rev int64
	if kvs := tr.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		rev = kvs[0].ModRevision
	}
	if rev != expect {
		return 0, fmt.Errorf("%w: %s changed under this node (revision %d, expected %d)", ErrNotOwner, key, rev, expect)
	}
	return 0, fmt.Errorf("%w: writing %s: %w", ErrNotOwner, key, ErrProofFailed)
}
