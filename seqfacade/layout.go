package seqfacade

import (
	"math"
	"math/bits"
)

// layout is the arithmetic of the uid space: uids to sections, sections to
// groups. A plain value, safe for concurrent use.
//
// Sections are numbered from 0: section s holds uids
// s*sectionSize .. (s+1)*sectionSize-1 (section 0 includes uid 0, which is
// never valid), and the last section is short when the uid limit is not a
// multiple of the section size. Group g holds sections
// g*groupSize .. (g+1)*groupSize-1, the last group short likewise.
type layout struct {
	sectionSize uint64
	bySection   divider // divides by sectionSize
	uidLimit    uint64
	groupSize   int
	sections    int
	groups      int
}

func newLayout(c Config) layout {
	n := sectionCount(c.UIDLimit, c.SectionSize)
	return layout{
		sectionSize: c.SectionSize,
		bySection:   newDivider(c.SectionSize),
		uidLimit:    c.UIDLimit,
		groupSize:   c.GroupSize,
		sections:    n,
		groups:      (n + c.GroupSize - 1) / c.GroupSize,
	}
}

// sectionCount is ceil(limit / size), saturated above MaxSections so that
// an absurd configuration cannot overflow an int.
func sectionCount(limit, size uint64) int {
	n := limit / size
	if limit%size != 0 {
		n++
	}
	if n > MaxSections {
		return MaxSections + 1
	}
	return int(n)
}

// valid reports whether uid is in 1..uidLimit-1.
func (l layout) valid(uid uint64) bool { return uid-1 < l.uidLimit-1 }

// locate returns uid's section and its index within the section.
func (l layout) locate(uid uint64) (sec int, i uint64) {
	s, i := l.bySection.divmod(uid)
	return int(s), i
}

// groupOf returns the group holding section sec and sec's index in it.
func (l layout) groupOf(sec int) (g, local int) { return sec / l.groupSize, sec % l.groupSize }

// firstSection returns the first section of group g.
func (l layout) firstSection(g int) int { return g * l.groupSize }

// sectionsIn returns the number of sections in group g.
func (l layout) sectionsIn(g int) int {
	return min(l.groupSize, l.sections-g*l.groupSize)
}

// uidsIn returns the number of uids in section sec (uid 0 counted).
func (l layout) uidsIn(sec int) int {
	first := uint64(sec) * l.sectionSize
	return int(min(l.sectionSize, l.uidLimit-first))
}

// divider divides by a fixed d >= 1 with two multiplications instead of
// a division instruction, which is the slower part of locating a uid
// (DIV r64 takes 10 to 40 cycles depending on the processor). A plain
// value, safe for concurrent use.
type divider struct {
	d, m uint64 // m = floor((2^64-1) / d)
}

func newDivider(d uint64) divider { return divider{d: d, m: math.MaxUint64 / d} }

// divmod returns n / d and n % d, exactly, for every n and every d >= 1.
//
// Why it is exact: let q = floor(n/d). Since 2^64 - d <= m*d < 2^64,
// n*m/2^64 is below n/d and above n/d - n/2^64 > n/d - 1, so
// q0 = floor(n*m / 2^64) is q or q-1. Then r0 = n - q0*d is r or r+d (no
// overflow: q0*d <= n), and one comparison with d corrects q0 and r0.
// The correction is rare for uids far below 2^64: with the defaults
// only for multiples of d.
func (v divider) divmod(n uint64) (q, r uint64) {
	q, _ = bits.Mul64(n, v.m)
	r = n - q*v.d
	if r >= v.d {
		q++
		r -= v.d
	}
	return q, r
}
