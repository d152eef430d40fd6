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
// The first write of a group also creates <prefix>/seq/born/<group>: a
// group key found absent while its born key exists was deleted (an
// operator's mistake), and is refused as corrupt rather than read as
// zeros, which would restart every uid of the group from 1. Concurrent
// reads and writes go to etcd together (txnBatcher). Safe for concurrent
// use.
type etcdStore struct {
	cli     *clientv3.Client
	lay     layout
	prefix  string
	timeout time.Duration
	// batch sends concurrent reads and writes (a failover's tens of
	// groups) as one transaction each round trip.
	batch *txnBatcher
}

var _ Store = (*etcdStore)(nil)

func newEtcdStore(cli *clientv3.Client, cfg Config) *etcdStore {
	return &etcdStore{cli: cli, lay: newLayout(cfg), prefix: cfg.Prefix, timeout: cfg.RequestTimeout, batch: newTxnBatcher(cli, cfg.RequestTimeout)}
}

// txnCounter is a Store that counts the etcd transactions it sent.
type txnCounter interface{ txnsSent() uint64 }

func (s *etcdStore) txnsSent() uint64 { return s.batch.sent.Load() }

// readsAhead tells routed that its group keys are this store's: a
// confirmation may read them for the first loads.
func (s *etcdStore) readsAhead() bool { return true }

func groupKey(prefix string, g int) string { return fmt.Sprintf("%s/seq/groups/%08x", prefix, g) }

func bornKey(prefix string, g int) string { return fmt.Sprintf("%s/seq/born/%08x", prefix, g) }

// Load implements Store with a linearizable Get, in a transaction with
// the proof when there is one.
func (s *etcdStore) Load(ctx context.Context, g int, proof []clientv3.Cmp) (GroupState, error) {
	n := s.lay.sectionsIn(g)
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key, born := groupKey(s.prefix, g), bornKey(s.prefix, g)
	tr, err := s.batch.txn(cctx, g, proof, []clientv3.Op{clientv3.OpGet(key), clientv3.OpGet(born, clientv3.WithCountOnly())}, nil)
	if err != nil {
		return GroupState{}, fmt.Errorf("reading %s: %w", key, err)
	}
	if !tr.Succeeded {
		return GroupState{}, fmt.Errorf("%w: reading %s: %w", ErrNotOwner, key, ErrProofFailed)
	}
	kvs := tr.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		// HAZARD: zeros only for a group never written; one whose key was
		// deleted would hand every uid values it had already.
		if tr.Responses[1].GetResponseRange().Count > 0 {
			return GroupState{}, fmt.Errorf("%w: %s is missing but %s says it was written: the key was deleted; refusing to start its uids again from 1 (restore it, or raise every max_seq with mig seq-raise)", ErrCorrupt, key, born)
		}
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
	// Every write puts the group's born key, so that the group key cannot
	// be deleted unnoticed (see etcdStore), groups written before born
	// keys existed included; the first write also checks that none exists
	// (a key deleted after it was written is not a first write).
	born := bornKey(s.prefix, g)
	ops := []clientv3.Op{clientv3.OpPut(key, string(encodeGroup(maxSeqs))), clientv3.OpPut(born, "1")}
	if expect == 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(born), "=", 0))
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tr, err := s.batch.txn(cctx, g, cmps, ops,
		[]clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly()), clientv3.OpGet(bornKey(s.prefix, g), clientv3.WithCountOnly())})
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
	if expect == 0 && tr.Responses[1].GetResponseRange().Count > 0 {
		return 0, fmt.Errorf("%w: %s was deleted after it was written", ErrCorrupt, key)
	}
	return 0, fmt.Errorf("%w: writing %s: %w", ErrNotOwner, key, ErrProofFailed)
}
