package route

import (
	"testing"
)

func TestLookup(t *testing.T) {
	tbl := Table{Version: 3, SectionSize: 10, GroupSize: 2, Groups: 5,
		Routes: Compact([]string{"a", "a", "b", "", "a"}, map[string]string{"a": "h1:1", "b": "h2:2"})}
	if err := tbl.Check(); err != nil {
		t.Fatal(err)
	}
	if len(tbl.Routes) != 4 {
		t.Fatalf("routes %v, want 4 (a a merged)", tbl.Routes)
	}
	for _, c := range []struct {
		uid  uint64
		node string
		ok   bool
	}{
		{0, "a", true}, {19, "a", true}, {39, "a", true}, {40, "b", true}, {59, "b", true},
		{60, "", false}, {79, "", false}, {80, "a", true}, {99, "a", true}, {100, "", false}, {1 << 63, "", false},
	} {
		r, ok := tbl.Lookup(c.uid)
		if ok != c.ok || r.Node != c.node {
			t.Errorf("Lookup(%d) = %q, %v; want %q, %v", c.uid, r.Node, ok, c.node, c.ok)
		}
		if ok && r.Address == "" {
			t.Errorf("Lookup(%d): no address", c.uid)
		}
	}
	if _, ok := (Table{}).Lookup(1); ok {
		t.Error("the zero Table places a uid")
	}
	noVersion := tbl
	noVersion.Version = 0
	if _, ok := noVersion.Lookup(1); ok {
		t.Error("a table of version 0 places a uid")
	}
}

func TestCheck(t *testing.T) {
	good := Table{Version: 1, SectionSize: 1, GroupSize: 1, Groups: 3, Routes: []Route{{0, 1, "a", ""}, {2, 2, "b", ""}}}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]Table{
		"gap":       {Version: 1, SectionSize: 1, GroupSize: 1, Groups: 3, Routes: []Route{{0, 0, "a", ""}, {2, 2, "b", ""}}},
		"short":     {Version: 1, SectionSize: 1, GroupSize: 1, Groups: 3, Routes: []Route{{0, 1, "a", ""}}},
		"beyond":    {Version: 1, SectionSize: 1, GroupSize: 1, Groups: 3, Routes: []Route{{0, 3, "a", ""}}},
		"backwards": {Version: 1, SectionSize: 1, GroupSize: 1, Groups: 3, Routes: []Route{{0, 1, "a", ""}, {2, 1, "b", ""}}},
		"nolayout":  {Version: 1, Groups: 3, Routes: []Route{{0, 2, "a", ""}}},
	} {
		if err := bad.Check(); err == nil {
			t.Errorf("%s: Check accepted %+v", name, bad)
		}
	}
}

func FuzzLookup(f *testing.F) {
	f.Add(uint64(5), uint64(3), uint8(2), []byte{0, 0, 1, 2, 2})
	f.Fuzz(func(t *testing.T, uid, size uint64, gs uint8, owners []byte) {
		if size == 0 || gs == 0 || len(owners) == 0 {
			return
		}
		names := make([]string, len(owners))
		for i, o := range owners {
			names[i] = string('a' + rune(o%4))
		}
		tbl := Table{Version: 1, SectionSize: size, GroupSize: int(gs), Groups: len(names), Routes: Compact(names, nil)}
		if err := tbl.Check(); err != nil {
			t.Fatal(err)
		}
		r, ok := tbl.Lookup(uid)
		g := uid / size / uint64(gs)
		if g >= uint64(len(names)) {
			if ok {
				t.Fatalf("uid %d beyond the table placed on %q", uid, r.Node)
			}
			return
		}
		if !ok || r.Node != names[g] || int(g) < r.First || int(g) > r.Last {
			t.Fatalf("Lookup(%d) = %+v, %v; group %d is %q", uid, r, ok, g, names[g])
		}
	})
}
