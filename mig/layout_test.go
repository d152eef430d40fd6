package mig_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"testing/quick"
	"time"

	"github.com/migsvc/mig/mig"
)

func TestComposeDecomposeRoundTrip(t *testing.T) {
	l := mig.DefaultLayout()
	f := func(tick int64, worker, seq uint32) bool {
		tick &= mig.MaxTick
		worker &= mig.MaxWorker
		seq &= mig.MaxSeq
		id, err := l.Compose(tick, worker, seq)
		if err != nil {
			return false
		}
		p, err := l.Decompose(id)
		return err == nil && p == mig.Parts{Tick: tick, Worker: worker, Seq: seq}
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 100000}); err != nil {
		t.Fatal(err)
	}
}

func TestComposeOrdersByTickThenSeq(t *testing.T) {
	l := mig.DefaultLayout()
	f := func(t1, t2 int64, s1, s2 uint32, w uint32) bool {
		t1, t2 = t1&mig.MaxTick, t2&mig.MaxTick
		s1, s2, w = s1&mig.MaxSeq, s2&mig.MaxSeq, w&mig.MaxWorker
		a, _ := l.Compose(t1, w, s1)
		b, _ := l.Compose(t2, w, s2)
		want := t1 < t2 || (t1 == t2 && s1 < s2)
		return (a < b) == want
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestComposeRejectsOutOfRange(t *testing.T) {
	l := mig.DefaultLayout()
	for _, tc := range []struct {
		name        string
		tick        int64
		worker, seq uint32
		want        error
	}{
		{"negative tick", -1, 0, 0, mig.ErrTickRange},
		{"tick past 39 bits", mig.MaxTick + 1, 0, 0, mig.ErrTickRange},
		{"worker 64", 0, 64, 0, mig.ErrWorkerRange},
		{"seq 2^18", 0, 0, mig.MaxSeq + 1, mig.ErrSeqRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := l.Compose(tc.tick, tc.worker, tc.seq); !errors.Is(err, tc.want) {
				t.Fatalf("Compose(%d, %d, %d) = %v, want %v", tc.tick, tc.worker, tc.seq, err, tc.want)
			}
		})
	}
	if id, err := l.Compose(mig.MaxTick, mig.MaxWorker, mig.MaxSeq); err != nil || id != 1<<63-1 {
		t.Fatalf("largest parts = %d, %v; want 2^63-1", id, err)
	}
}

func TestLayoutRange(t *testing.T) {
	l := mig.DefaultLayout()
	years := l.LastTime().Sub(l.Epoch()).Hours() / 24 / 365.25
	if years < 174 || years > 175 {
		t.Fatalf("layout lasts %.1f years, want about 174", years)
	}
	if got := l.Epoch().Format(time.RFC3339); got != mig.DefaultEpoch {
		t.Fatalf("default epoch %s, want %s", got, mig.DefaultEpoch)
	}
}

func TestParseLayout(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{"", false},
		{"2020-01-01T00:00:00Z", false},
		{"2020-01-01T09:00:00+09:00", false},
		{"2020-01-01T00:00:00.005Z", true}, // not a whole tick
		{"1969-12-31T00:00:00Z", true},
		{"yesterday", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := mig.ParseLayout(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseLayout(%q) = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, mig.ErrEpoch) {
				t.Fatalf("error %v does not wrap ErrEpoch", err)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mig.ID
		ok   bool
	}{
		{"0", 0, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false}, // sign bit
		{"18446744073709551616", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"", 0, false},
		{"12a", 0, false},
		{" 12", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := mig.ParseID(tc.in)
			if tc.ok != (err == nil) || got != tc.want {
				t.Fatalf("ParseID(%q) = %d, %v", tc.in, got, err)
			}
			if err != nil && !errors.Is(err, mig.ErrInvalidID) {
				t.Fatalf("error %v does not wrap ErrInvalidID", err)
			}
		})
	}
}

func FuzzDecompose(f *testing.F) {
	f.Add(uint64(0))
	f.Add(uint64(1<<63 - 1))
	f.Add(uint64(1 << 63))
	l := mig.DefaultLayout()
	f.Fuzz(func(t *testing.T, v uint64) {
		p, err := l.Decompose(mig.ID(v))
		if v>>63 != 0 {
			if !errors.Is(err, mig.ErrInvalidID) {
				t.Fatalf("Decompose(%d) = %v, want ErrInvalidID", v, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decompose(%d): %v", v, err)
		}
		id, err := l.Compose(p.Tick, p.Worker, p.Seq)
		if err != nil || uint64(id) != v {
			t.Fatalf("Compose(Decompose(%d)) = %d, %v", v, id, err)
		}
	})
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0", "123", "-1", "9223372036854775808", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := mig.ParseID(s)
		if err != nil {
			if !errors.Is(err, mig.ErrInvalidID) {
				t.Fatalf("ParseID(%q) error %v does not wrap ErrInvalidID", s, err)
			}
			return
		}
		v, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil || id>>63 != 0 || uint64(id) != v {
			t.Fatalf("ParseID(%q) = %d, but it is %d (%v) in decimal", s, id, v, perr)
		}
	})
}

func ExampleLayout() {
	layout, err := mig.ParseLayout("2025-01-01T00:00:00Z")
	if err != nil {
		panic(err)
	}
	// Tick 6,000 is one minute after the epoch.
	id, err := layout.Compose(6000, 7, 42)
	if err != nil {
		panic(err)
	}
	p, _ := layout.Decompose(id)
	fmt.Println(id)
	fmt.Println(layout.Time(id).Format(time.RFC3339Nano), p.Tick, p.Worker, p.Seq)
	// Output:
	// 100665131050
	// 2025-01-01T00:01:00Z 6000 7 42
}
