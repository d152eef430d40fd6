package loadtest

import (
	"math/bits"
	"math/rand/v2"
)

// sampler draws uids from a Dist for one client. Not safe for concurrent
// use: each client has its own, with its own random source.
type sampler struct {
	n    uint64 // uids: stride*(1..n)
	step uint64 // the stride
	kind DistKind
	rng  *rand.Rand
	zipf *rand.Zipf
	hot  uint64 // DistHot: ranks 0..hot-1 are hot
	call float64
	mult uint64 // permutes ranks onto uids
	seen map[uint64]struct{}
}

// newSampler returns a sampler of d (with its defaults set) drawing from
// rng.
func newSampler(d Dist, rng *rand.Rand) *sampler {
	s := &sampler{n: d.UIDs, step: d.Stride(), kind: d.Kind, rng: rng, call: d.HotCalls, seen: make(map[uint64]struct{})}
	switch d.Kind {
	case DistHot:
		s.hot = min(max(uint64(d.HotUIDs*float64(d.UIDs)), 1), d.UIDs)
	case DistZipf:
		s.zipf = rand.NewZipf(rng, d.ZipfS, d.ZipfV, d.UIDs-1)
	}
	s.mult = coprimeMultiplier(d.UIDs)
	return s
}

// coprimeMultiplier returns a multiplier m < n with gcd(m, n) = 1, so
// that rank -> rank*m mod n is a permutation of 0..n-1 that scatters
// neighbouring ranks. Hot uids are then spread over the uid space, as real
// users are, instead of all falling into one seqfacade section.
func coprimeMultiplier(n uint64) uint64 {
	if n <= 2 {
		return 1
	}
	m := 0x9E3779B97F4A7C15 % n // the golden ratio, a classic scatterer
	for ; gcd(m, n) != 1; m = (m + 1) % n {
	}
	return m
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// rank draws a rank in 0..n-1: 0 is the most frequent for DistZipf, and
// 0..hot-1 are the hot set for DistHot.
func (s *sampler) rank() uint64 {
	switch s.kind {
	case DistHot:
		if s.hot == s.n {
			return s.rng.Uint64N(s.n)
		}
		if s.rng.Float64() < s.call {
			return s.rng.Uint64N(s.hot)
		}
		return s.hot + s.rng.Uint64N(s.n-s.hot)
	case DistZipf:
		return s.zipf.Uint64()
	}
	return s.rng.Uint64N(s.n)
}

// indexOf maps a rank to its uid's index, in 1..n: the uid is
// index*step.
func (s *sampler) indexOf(rank uint64) uint64 {
	hi, lo := bits.Mul64(rank, s.mult)
	return 1 + bits.Rem64(hi, lo, s.n)
}

// uidOf maps a rank to its uid.
func (s *sampler) uidOf(rank uint64) uint64 { return s.indexOf(rank) * s.step }

// uid draws one uid.
func (s *sampler) uid() uint64 { return s.uidOf(s.rank()) }

// fill fills dst with distinct uids (len(dst) <= n). A draw that repeats
// one already taken is redrawn a few times, then replaced by the next
// free uid, so a skewed distribution cannot make it spin.
func (s *sampler) fill(dst []uint64) {
	if len(dst) == 1 {
		dst[0] = s.uid()
		return
	}
	clear(s.seen)
	for i := range dst {
		x := s.indexOf(s.rank())
		for try := 0; try < 16; try++ {
			if _, dup := s.seen[x]; !dup {
				break
			}
			x = s.indexOf(s.rank())
		}
		for { // at most n steps, and len(dst) <= n
			if _, dup := s.seen[x]; !dup {
				break
			}
			x = x%s.n + 1
		}
		s.seen[x] = struct{}{}
		dst[i] = x * s.step
	}
}
