package seqfacade

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// round is one max_seq write of a group, raising every section that
// wanted it by a step. done is closed when it is over; err is then set,
// wrapping ErrUnavailable, if the sections were not raised.
type round struct {
	done chan struct{}
	err  error
}

func newRound() *round { return &round{done: make(chan struct{})} }

// need is a uid (index i) of section s that wants room.
type need struct {
	s *section
	i uint64
}

// prefetch asks, in the background, for s to be extended before it runs
// out. It never waits.
func (g *group) prefetch(s *section, i uint64) {
	// Errors (unloaded, closed) need no answer: the caller got its value.
	_, _ = g.request([]need{{s, i}}, false)
}

// request asks for the sections of needs, all of this group, to be
// raised. Urgent needs are uids at their section's max_seq: it returns
// the rounds to wait for, the one in flight for a section it already
// raises or the next one, so every section of one call shares one write.
// While the group's writes are failing, an urgent request fails at once
// with the last error (the retries go on in the background).
func (g *group) request(needs []need, urgent bool) ([]*round, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead.Load() {
		return nil, g.mu.deadErr
	}
	var rounds []*round
	next := false
	for _, nd := range needs {
		s := nd.s
		switch {
		case g.mu.persisted[s.local] >= MaxSeq:
			if urgent {
				return nil, fmt.Errorf("%w: section %d's max_seq is %d", ErrExhausted, g.first+s.local, g.mu.persisted[s.local])
			}
			continue
		case urgent && s.cur.get(nd.i) < s.limit.Load():
			continue // raised meanwhile
		case urgent && s.ext.round != nil:
			if !slices.Contains(rounds, s.ext.round) {
				rounds = append(rounds, s.ext.round)
			}
			continue
		case !urgent && (s.requested.Load() || s.cur.get(nd.i) <= s.prefetch.Load()):
			// Asked for already, or the caller read prefetch before a
			// round raised it: no write needed yet.
			continue
		}
		if !s.ext.wanted {
			s.ext.wanted = true
			g.mu.wantN++
		}
		s.requested.Store(true)
		next = true
	}
	if !next {
		return rounds, nil
	}
	if !g.mu.running {
		if !g.n.spawn(g.extendLoop) {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
		}
		g.mu.running = true
	}
	if urgent && g.mu.failing != nil {
		return nil, g.mu.failing
	}
	return append(rounds, g.mu.next), nil
}

// extendLoop runs the group's rounds, one at a time, until no section
// wants one; a failed round is retried after a backoff for as long as the
// group stays loaded. One per group at most (mu.running).
func (g *group) extendLoop() {
	n := g.n
	backoff := minRetry
	for {
		g.mu.Lock()
		if g.dead.Load() || g.mu.wantN == 0 {
			g.mu.running = false
			if g.dead.Load() {
				r := g.mu.next
				g.mu.next = newRound()
				r.err = g.mu.deadErr
				close(r.done)
			}
			g.mu.Unlock()
			return
		}
		r := g.mu.next
		g.mu.next = newRound()
		var secs []*section
		var locals []int
		for _, s := range g.mu.sections {
			if s != nil && s.ext.wanted {
				s.ext.wanted = false
				s.ext.round = r
				secs = append(secs, s)
				locals = append(locals, s.local)
			}
		}
		g.mu.wantN = 0
		g.mu.Unlock()

		err := g.extend(locals)
		moved := false
		if err != nil && !g.live() {
			// The group moved while its calls waited for the write: they
			// go to its new owner, as a call whose claim lapsed does.
			if m := g.n.lapsed(g.idx); !errors.Is(m, ErrUnavailable) {
				err, moved = m, true
			}
		}

		g.mu.Lock()
		if err != nil {
			if !moved && !errors.Is(err, ErrUnavailable) {
				err = fmt.Errorf("%w: extending max_seq of group %d: %w", ErrUnavailable, g.idx, err)
			}
			g.mu.failing = err
		} else {
			g.mu.failing = nil
		}
		for _, s := range secs {
			s.ext.round = nil
			switch {
			case s.ext.wanted:
			case err != nil:
				// Retried after the backoff; requested stays set.
				s.ext.wanted = true
				g.mu.wantN++
			default:
				s.requested.Store(false)
			}
		}
		r.err = err
		close(r.done)
		g.mu.Unlock()
		if err == nil {
			backoff = minRetry
			continue
		}
		n.log.Warn("seq facade: max_seq write failed", "group", g.idx, "sections", len(secs), "err", err, "retry_in", backoff)
		select {
		case <-g.gone:
		case <-n.ctx.Done():
			g.kill(ErrClosed)
		case <-n.src.After(backoff):
		}
		backoff = min(2*backoff, maxRetry)
	}
}

// extendAll is a load's first extension: every section of the group
// by the configured step, in one write.
func (g *group) extendAll() error { return g.extendWith(g.allSections(), true) }

// extend persists a higher max_seq for the sections at locals (each by
// its step, which doubles for a section extended again within
// StepPeriod) and raises them.
func (g *group) extend(locals []int) error { return g.extendWith(locals, false) }

func (g *group) extendWith(locals []int, first bool) error {
	n := g.n
	if !g.live() {
		return errors.New("claim ended")
	}
	g.mu.Lock()
	reread := g.mu.reread
	g.mu.Unlock()
	if reread {
		// HAZARD: the re-read proves the claim in the same transaction, and
		// adopt takes only what this node wrote (see adopt).
		ctx, cancel := n.callCtx(g.claim)
		st, err := n.store.Load(ctx, g.idx, g.claim.Proof())
		cancel()
		if err == nil {
			err = g.adopt(st)
		}
		if errors.Is(err, ErrNotOwner) || errors.Is(err, ErrCorrupt) {
			g.kill(err)
		}
		if err != nil {
			return err
		}
	}

	now := n.src.Mono()
	g.mu.Lock()
	maxes := slices.Clone(g.mu.persisted)
	steps := slices.Clone(g.mu.steps)
	for _, l := range locals {
		step := n.cfg.Step
		if last := g.mu.lastExt[l]; !first && last != 0 && now-last < n.cfg.StepPeriod {
			step = min(2*g.mu.steps[l], MaxStep)
		}
		steps[l] = step
		// No overflow: persisted <= MaxSeq < 2^63 and step <= 2^32.
		maxes[l] = min(maxes[l]+step, MaxSeq)
	}
	rev := g.mu.rev
	g.mu.Unlock()

	var newRev int64
	var err error
	for attempt := 0; ; attempt++ {
		proof := g.claim.Proof()
		ctx, cancel := n.callCtx(g.claim)
		n.stats.writes.Add(1)
		newRev, err = n.store.Save(ctx, g.idx, maxes, rev, proof)
		cancel()
		// A table written meanwhile (another group moved) fails the proof
		// although this node still holds the group: the claim then has a
		// newer proof, and the write is tried again with it.
		if attempt == 0 && errors.Is(err, ErrProofFailed) && g.live() && !sameProof(proof, g.claim.Proof()) {
			n.stats.writeFailures.Add(1)
			continue
		}
		break
	}
	if err != nil {
		n.stats.writeFailures.Add(1)
		if errors.Is(err, ErrNotOwner) {
			g.kill(err)
			return err
		}
		// HAZARD: the write may have happened, or may yet. The sections
		// stay where they are (what is persisted can only be higher, which
		// is safe), and the group is read again before the next write,
		// since its revision may have moved.
		g.mu.Lock()
		g.mu.reread = true
		g.mu.attempted = maxes
		g.mu.Unlock()
		return err
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead.Load() {
		return g.mu.deadErr
	}
	g.mu.persisted = maxes
	g.mu.rev = newRev
	for _, l := range locals {
		if !first {
			g.mu.lastExt[l] = now
		}
		g.mu.steps[l] = steps[l]
	}
	// HAZARD: raise only after the write is acknowledged, and only while
	// the claim holds: past its deadline another node may be about to
	// serve these sections.
	if !g.live() {
		return errors.New("claim ended while writing")
	}
	for _, s := range g.mu.sections {
		if s != nil {
			g.raiseLocked(s)
		}
	}
	return nil
}

// sameProof reports whether two proofs are the same comparisons.
func sameProof(a, b []clientv3.Cmp) bool { return reflect.DeepEqual(a, b) }
