package loadtest

import (
	"math/rand/v2"
	"testing"
)

func TestSampler(t *testing.T) {
	const draws = 200_000
	tests := []struct {
		name string
		dist Dist
		// topShare bounds the share of draws that the most frequent
		// ranks get: the hot set for hot, rank 0 for zipf.
		topMin, topMax float64
	}{
		{"uniform", Dist{Kind: DistUniform, UIDs: 1000}, 0, 0.01},
		{"hot 90/1", Dist{Kind: DistHot, UIDs: 10_000}, 0.88, 0.92},
		{"hot 50/10", Dist{Kind: DistHot, UIDs: 1000, HotCalls: 0.5, HotUIDs: 0.1}, 0.48, 0.52},
		{"hot all", Dist{Kind: DistHot, UIDs: 10, HotUIDs: 1}, 1, 1},
		{"zipf", Dist{Kind: DistZipf, UIDs: 100_000, ZipfS: 2}, 0.5, 0.75},
		{"one uid", Dist{Kind: DistZipf, UIDs: 1}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.dist
			d.Space = d.UIDs + 1 // uids 1..UIDs: TestSamplerSpread spreads them
			d = d.withDefaults()
			s := newSampler(d, rand.New(rand.NewPCG(1, 2)))
			top := map[uint64]bool{s.uidOf(0): true}
			if d.Kind == DistHot {
				for r := range s.hot {
					top[s.uidOf(r)] = true
				}
			}
			hits := 0
			counts := make(map[uint64]int)
			for range draws {
				u := s.uid()
				if u < 1 || u > d.UIDs {
					t.Fatalf("uid %d outside 1..%d", u, d.UIDs)
				}
				counts[u]++
				if top[u] {
					hits++
				}
			}
			share := float64(hits) / draws
			if d.Kind != DistUniform && (share < tt.topMin || share > tt.topMax) {
				t.Errorf("the top ranks got %.3f of the draws, want %.2f..%.2f", share, tt.topMin, tt.topMax)
			}
			if d.Kind == DistUniform && len(counts) != int(d.UIDs) {
				t.Errorf("%d of %d uids drawn", len(counts), d.UIDs)
			}
		})
	}
}

func TestSamplerPermutation(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 10, 97, 1000, 1 << 20} {
		s := newSampler(Dist{UIDs: n, Space: n + 1}.withDefaults(), rand.New(rand.NewPCG(1, 2)))
		seen := make(map[uint64]bool, n)
		for r := range n {
			u := s.uidOf(r)
			if u < 1 || u > n || seen[u] {
				t.Fatalf("n=%d: rank %d maps to uid %d, out of range or taken", n, r, u)
			}
			seen[u] = true
		}
	}
}

func TestSamplerFillDistinct(t *testing.T) {
	for _, d := range []Dist{
		{Kind: DistZipf, UIDs: 50, ZipfS: 3, Space: 51},
		{Kind: DistHot, UIDs: 20, HotUIDs: 0.05, HotCalls: 1, Space: 21},
		{Kind: DistUniform, UIDs: 8, Space: 9},
	} {
		s := newSampler(d.withDefaults(), rand.New(rand.NewPCG(3, 4)))
		for _, n := range []int{1, 2, 8} {
			dst := make([]uint64, n)
			for range 100 {
				s.fill(dst)
				seen := map[uint64]bool{}
				for _, u := range dst {
					if seen[u] || u < 1 || u > d.UIDs {
						t.Fatalf("%v: batch %v repeats a uid or leaves 1..%d", d, dst, d.UIDs)
					}
					seen[u] = true
				}
			}
		}
	}
}

// TestSamplerSpread: by default the uids spread over the whole default
// uid space, so that every group of sections (128 sections of 100,000
// uids, mig serve's defaults), and every node, gets its share; with
// Space UIDs+1 they are 1..UIDs.
func TestSamplerSpread(t *testing.T) {
	const groupUIDs = 128 * 100_000
	groups := (DefaultUIDSpace + groupUIDs - 1) / groupUIDs
	for _, tt := range []struct {
		name             string
		dist             Dist
		stride, top      uint64
		minGroups, draws int
	}{
		{"default", Dist{}, 4294, 4_294_000_000, groups, 200_000},
		{"few uids", Dist{UIDs: 1000}, 4_294_967, 4_294_967_000, groups, 50_000},
		{"zipf", Dist{Kind: DistZipf, UIDs: 1_000_000}, 4294, 4_294_000_000, groups / 2, 200_000},
		{"consecutive", Dist{UIDs: 1000, Space: 1001}, 1, 1000, 1, 10_000},
		{"below a smaller limit", Dist{UIDs: 10, Space: 1_000_000}, 99_999, 999_990, 1, 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.dist.withDefaults()
			if d.Stride() != tt.stride {
				t.Fatalf("stride %d, want %d", d.Stride(), tt.stride)
			}
			s := newSampler(d, rand.New(rand.NewPCG(5, 6)))
			seen := map[uint64]bool{}
			for range tt.draws {
				u := s.uid()
				if u == 0 || u%tt.stride != 0 || u > tt.top || u >= d.Space {
					t.Fatalf("uid %d: not a multiple of %d in 1..%d", u, tt.stride, tt.top)
				}
				seen[u/groupUIDs] = true
			}
			if len(seen) < tt.minGroups {
				t.Errorf("the uids fell into %d groups, want at least %d", len(seen), tt.minGroups)
			}
		})
	}
}
