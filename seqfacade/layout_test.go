package seqfacade

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/quick"
)

func TestLayoutDefaults(t *testing.T) {
	l := newLayout(Config{}.withDefaults())
	if l.sections != 42950 || l.groups != 336 {
		t.Fatalf("%d sections in %d groups, want 42950 in 336", l.sections, l.groups)
	}
	if n := l.sectionsIn(335); n != 42950-335*128 {
		t.Fatalf("last group has %d sections", n)
	}
	if n := l.uidsIn(42949); n != 1<<32-42949*100_000 {
		t.Fatalf("last section has %d uids", n)
	}
	for _, tc := range []struct {
		uid        uint64
		sec, group int
		i          uint64
	}{
		{1, 0, 0, 1},
		{99_999, 0, 0, 99_999},
		{100_000, 1, 0, 0},
		{12_799_999, 127, 0, 99_999},
		{12_800_000, 128, 1, 0},
		{1<<32 - 1, 42949, 335, 1<<32 - 1 - 42949*100_000},
	} {
		sec, i := l.locate(tc.uid)
		g, local := l.groupOf(sec)
		if sec != tc.sec || i != tc.i || g != tc.group || l.firstSection(g)+local != sec {
			t.Errorf("uid %d: section %d index %d group %d local %d", tc.uid, sec, i, g, local)
		}
	}
	for _, uid := range []uint64{0, 1 << 32, 1<<64 - 1} {
		if l.valid(uid) {
			t.Errorf("uid %d valid", uid)
		}
	}
}

// TestLayoutQuick: every valid uid maps to exactly one (section, index)
// within bounds, and back.
func TestLayoutQuick(t *testing.T) {
	f := func(limit, size uint64, gs uint8, uid uint64) bool {
		limit = 2 + limit%1_000_000
		size = 1 + size%limit
		if sectionCount(limit, size) > MaxSections {
			return true
		}
		l := newLayout(Config{UIDLimit: limit, SectionSize: size, GroupSize: 1 + int(gs)})
		uid = 1 + uid%(limit-1)
		sec, i := l.locate(uid)
		g, local := l.groupOf(sec)
		return l.valid(uid) && sec < l.sections && g < l.groups && local < l.sectionsIn(g) &&
			i < uint64(l.uidsIn(sec)) && uint64(sec)*size+i == uid
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 20000, Rand: nil}); err != nil {
		t.Fatal(err)
	}
}

func TestCodec(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 130 {
		m := make([]uint64, n)
		for i := range m {
			m[i] = r.Uint64N(MaxSeq)
		}
		b := encodeGroup(m)
		if len(b) != 1+8*n {
			t.Fatalf("%d sections encode to %d bytes", n, len(b))
		}
		got, err := decodeGroup(b, n)
		if err != nil || !slices.Equal(got, m) {
			t.Fatalf("round trip of %d sections: %v", n, err)
		}
		if _, err := decodeGroup(b, n+1); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decoding %d sections as %d: %v", n, n+1, err)
		}
	}
	for _, b := range [][]byte{nil, {}, {2, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 0, 0, 0, 0x80}} {
		if _, err := decodeGroup(b, 1); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeGroup(%x) = %v, want ErrCorrupt", b, err)
		}
	}
}

func FuzzDecodeGroup(f *testing.F) {
	f.Add(encodeGroup([]uint64{1, 2, 3}), 3)
	f.Add([]byte{}, 0)
	f.Add([]byte{1}, 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > MaxGroupSize {
			return
		}
		m, err := decodeGroup(b, n)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(encodeGroup(m), b) {
			t.Fatalf("%x decodes to %v, which encodes differently", b, m)
		}
	})
}
