package seqfacade

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
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

func groupKey(prefix string, g int) string { return groupDir(prefix) + fmt.Sprintf("%08x", g) }

func bornKey(prefix string, g int) string { return bornDir(prefix) + fmt.Sprintf("%08x", g) }

func groupDir(prefix string) string { return prefix + "/seq/groups/" }

func bornDir(prefix string) string { return prefix + "/seq/born/" }

// keyGroup returns the group of key, a key under dir (groupDir or
// bornDir), if it is one.
func keyGroup(key []byte, dir string) (int, bool) {
	rest, ok := strings.CutPrefix(string(key), dir)
	if !ok {
		return 0, false
	}
	g, err := strconv.ParseUint(rest, 16, 31)
	return int(g), err == nil
}

// aheadReader is a Store whose groups another transaction may read ahead
// of their loads (routed.confirm, routeState.readSeen): the etcd store,
// whose keys are in the same etcd as the table.
type aheadReader interface {
	// aheadOps reads runs of consecutive groups, [first, last] each: two
	// operations a run.
	aheadOps(runs [][2]int) []clientv3.Op
	// aheadStates returns what aheadOps read (resp, its answers in
	// order), as Load would: zeros for a group never written. A group
	// Load would refuse (its key deleted, its value unreadable) is left
	// out, for its load to read and report.
	aheadStates(runs [][2]int, resp []*etcdserverpb.ResponseOp) map[int]GroupState
}

var _ aheadReader = (*etcdStore)(nil)

func (s *etcdStore) aheadOps(runs [][2]int) []clientv3.Op {
	ops := make([]clientv3.Op, 0, 2*len(runs))
	for _, r := range runs {
		ops = append(ops,
			clientv3.OpGet(groupKey(s.prefix, r[0]), clientv3.WithRange(groupKey(s.prefix, r[1]+1))),
			clientv3.OpGet(bornKey(s.prefix, r[0]), clientv3.WithRange(bornKey(s.prefix, r[1]+1)), clientv3.WithKeysOnly()))
	}
	return ops
}

func (s *etcdStore) aheadStates(runs [][2]int, resp []*etcdserverpb.ResponseOp) map[int]GroupState {
	out := map[int]GroupState{}
	for i, r := range runs {
		if 2*i+1 >= len(resp) {
			break
		}
		found := map[int]bool{}
		for _, kv := range resp[2*i].GetResponseRange().GetKvs() {
			g, ok := keyGroup(kv.Key, groupDir(s.prefix))
			if !ok || g < r[0] || g > r[1] {
				continue
			}
			found[g] = true
			if m, err := decodeGroup(kv.Value, s.lay.sectionsIn(g)); err == nil {
				out[g] = GroupState{MaxSeqs: m, Revision: kv.ModRevision}
			}
		}
		for _, kv := range resp[2*i+1].GetResponseRange().GetKvs() {
			if g, ok := keyGroup(kv.Key, bornDir(s.prefix)); ok {
				found[g] = true // written once: its key must be read
			}
		}
		for g := r[0]; g <= r[1]; g++ {
			if !found[g] {
				out[g] = GroupState{MaxSeqs: make([]uint64, s.lay.sectionsIn(g))}
			}
		}
	}
	return out
}

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
