package loadtest_test

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/mig"
)

// simOp is an operation of a simulated, correct service: it took effect
// at lin, between its call and its return.
type simOp struct {
	client         int
	call, lin, ret time.Duration
	server         int // ID operations
	n              int // IDs wanted
	uids           []uint64
	ids            []mig.ID
	seqs           []uint64
}

func (o *simOp) isSeq() bool { return o.uids != nil }

// simulate makes a random history that a correct service could produce:
// clients send one request at a time; each takes effect at a random
// instant of its interval; the service hands out increasing values (with
// gaps) in the order operations take effect.
func simulate(t testing.TB, r *rand.Rand) []*simOp {
	clients, perClient := 1+r.IntN(6), 1+r.IntN(12)
	servers, uids := 1+r.IntN(3), 1+r.IntN(4)
	var ops []*simOp
	for c := range clients {
		at := time.Duration(r.IntN(5)) * time.Microsecond
		for range perClient {
			o := &simOp{client: c, call: at}
			o.lin = o.call + time.Duration(r.IntN(5))*time.Microsecond
			o.ret = o.lin + time.Duration(r.IntN(5))*time.Microsecond
			at = o.ret + time.Duration(r.IntN(3))*time.Microsecond
			if r.IntN(2) == 0 {
				o.server, o.n = r.IntN(servers), 1+r.IntN(4)
			} else {
				o.uids = []uint64{}
				for _, u := range r.Perm(uids)[:1+r.IntN(uids)] {
					o.uids = append(o.uids, uint64(u)+1)
				}
			}
			ops = append(ops, o)
		}
	}
	// Take effect in order of lin; ties are overlapping operations, in
	// any order.
	slices.SortStableFunc(ops, func(a, b *simOp) int { return cmp.Compare(a.lin, b.lin) })
	type slot struct{ tick, seq int64 }
	next := make([]slot, servers)
	cur := make(map[uint64]uint64)
	for _, o := range ops {
		if o.isSeq() {
			for _, u := range o.uids {
				cur[u] += 1 + uint64(r.IntN(3)*r.IntN(2))
				o.seqs = append(o.seqs, cur[u])
			}
			continue
		}
		s := &next[o.server]
		tick := layout.TickOf(start.Wall.Add(o.lin).UnixNano())
		if tick > s.tick {
			*s = slot{tick: tick}
		}
		s.seq += int64(r.IntN(2))
		for range o.n {
			id, err := layout.Compose(s.tick, uint32(o.server)+1, uint32(s.seq))
			if err != nil {
				t.Fatal(err)
			}
			o.ids = append(o.ids, id)
			s.seq++
		}
	}
	return ops
}

func check(t testing.TB, ops []*simOp) loadtest.Verdict {
	t.Helper()
	c := newChecker(t, loadtest.CheckConfig{})
	for _, o := range ops {
		var err error
		if o.isSeq() {
			err = c.RecordSeqs(loadtest.SeqAnswer{Client: o.client, Call: o.call, Return: o.ret, UIDs: o.uids, Seqs: o.seqs})
		} else {
			srv := loadtest.Server{Endpoint: "http://s", WorkerID: uint32(o.server) + 1}
			err = c.RecordIDs(loadtest.IDAnswer{Client: o.client, Server: srv, Call: o.call, Return: o.ret, IDs: o.ids})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return c.Check()
}

// mutate breaks one promise in ops, if it can, and returns the kind of
// violation that must be found ("" if it could not).
func mutate(r *rand.Rand, ops []*simOp, which int) string {
	var idOps, seqOps []*simOp
	for _, o := range ops {
		if o.isSeq() {
			seqOps = append(seqOps, o)
		} else {
			idOps = append(idOps, o)
		}
	}
	before := func(a, b *simOp) bool { return a.ret < b.call }
	for try := range 5 {
		switch (which + try) % 5 {
		case 0: // an ID handed out twice
			if len(idOps) == 0 {
				continue
			}
			a, b := idOps[r.IntN(len(idOps))], idOps[r.IntN(len(idOps))]
			i, j := r.IntN(len(a.ids)), r.IntN(len(b.ids))
			if a == b && i == j {
				if len(a.ids) == 1 {
					continue
				}
				j = (i + 1) % len(a.ids)
			}
			b.ids[j] = a.ids[i]
			return loadtest.KindDuplicateID
		case 1: // a server goes backwards: a later request gets earlier IDs
			for _, a := range r.Perm(len(idOps)) {
				for _, b := range idOps {
					if idOps[a].server == b.server && before(idOps[a], b) {
						idOps[a].ids, b.ids = b.ids, idOps[a].ids
						return loadtest.KindIDOrder
					}
				}
			}
		case 2: // a sequence handed out twice
			for _, a := range r.Perm(len(seqOps)) {
				for _, b := range seqOps {
					for i, u := range seqOps[a].uids {
						for j, w := range b.uids {
							if u == w && (seqOps[a] != b || i != j) {
								b.seqs[j] = seqOps[a].seqs[i]
								return loadtest.KindSeqDuplicate
							}
						}
					}
				}
			}
		case 3: // a uid's sequence rolls back
			for _, a := range r.Perm(len(seqOps)) {
				for _, b := range seqOps {
					if !before(seqOps[a], b) {
						continue
					}
					for i, u := range seqOps[a].uids {
						for j, w := range b.uids {
							if u == w {
								seqOps[a].seqs[i], b.seqs[j] = b.seqs[j], seqOps[a].seqs[i]
								return loadtest.KindSeqRollback
							}
						}
					}
				}
			}
		case 4: // an ID from an hour in the future
			if len(idOps) == 0 {
				continue
			}
			o := idOps[r.IntN(len(idOps))]
			i := r.IntN(len(o.ids))
			p, _ := layout.Decompose(o.ids[i])
			id, _ := layout.Compose(p.Tick+int64(time.Hour/mig.Tick), p.Worker, p.Seq)
			o.ids[i] = id
			return loadtest.KindIDTime
		}
	}
	return ""
}

// FuzzChecker checks random histories of a correct service, which must
// pass, and the same histories with one promise broken, which must fail
// with that violation. Porcupine and the order check must never disagree.
func FuzzChecker(f *testing.F) {
	for i := range 40 {
		f.Add(uint64(i), uint8(i))
	}
	f.Fuzz(func(t *testing.T, seed uint64, which uint8) {
		r := rand.New(rand.NewPCG(seed, seed>>32))
		ops := simulate(t, r)
		if v := check(t, ops); !v.OK() {
			t.Fatalf("a correct history fails: %s", details(v))
		}
		kind := mutate(r, ops, int(which))
		if kind == "" {
			return
		}
		v := check(t, ops)
		if v.ByKind[kind] == 0 {
			t.Fatalf("a history with a %s passes: %s", kind, details(v))
		}
		if v.ByKind[loadtest.KindCheckerDisagreement] != 0 {
			t.Fatalf("porcupine and the order check disagree: %s", details(v))
		}
	})
}

// FuzzSeqCheckersAgree gives the checker arbitrary sequence histories,
// most of them wrong, and requires the order check and porcupine to reach
// the same verdict on every uid: the order check's reduction of
// linearizability to "unique values, no real-time inversion" is exact.
func FuzzSeqCheckersAgree(f *testing.F) {
	for i := range 40 {
		f.Add(uint64(i))
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		r := rand.New(rand.NewPCG(seed, ^seed))
		c := newChecker(t, loadtest.CheckConfig{NoTimestamps: true})
		uids, values := 1+r.IntN(3), 1+r.IntN(12)
		for range 1 + r.IntN(14) {
			call := time.Duration(r.IntN(20))
			a := loadtest.SeqAnswer{Client: r.IntN(4), Call: call, Return: call + time.Duration(r.IntN(6))}
			for _, u := range r.Perm(uids)[:1+r.IntN(uids)] {
				a.UIDs = append(a.UIDs, uint64(u))
				a.Seqs = append(a.Seqs, uint64(r.IntN(values)))
			}
			if err := c.RecordSeqs(a); err != nil {
				t.Fatal(err)
			}
		}
		v := c.Check()
		if v.ByKind[loadtest.KindCheckerDisagreement] != 0 || !v.Porcupine.Ran || v.Porcupine.Unknown != 0 {
			t.Fatalf("porcupine %+v: %s", v.Porcupine, details(v))
		}
	})
}
