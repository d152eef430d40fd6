package seqfacade

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
	uidLimit    uint64
	groupSize   int
	sections    int
	groups      int
}

func newLayout(c Config) layout {
	n := sectionCount(c.UIDLimit, c.SectionSize)
	return layout{
		sectionSize: c.SectionSize,
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
	s := uid / l.sectionSize
	return int(s), uid - s*l.sectionSize
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
