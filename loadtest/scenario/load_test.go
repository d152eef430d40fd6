package scenario

import (
	"testing"
	"time"
)

// TestWaits: a wait runs from the send of the first request that failed
// after the last answer (or the send of a late answer) to the next
// answer; failures of requests sent before an answer arrived, and
// anything before the first answer, do not count.
func TestWaits(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	type step struct {
		ok        bool
		call, ret int // ms
		wait      int // ms, what ok returns
	}
	tests := []struct {
		name    string
		steps   []step
		end     int // ms, close
		longest int // ms
	}{
		{"quick answers", []step{{true, 10, 11, 0}, {true, 20, 22, 2}, {true, 30, 31, 1}}, 40, 2},
		{"failures then an answer", []step{{true, 10, 11, 0}, {false, 20, 21, 0}, {false, 30, 31, 0}, {true, 40, 41, 21}}, 50, 21},
		{"a hung request", []step{{true, 10, 11, 0}, {true, 20, 900, 880}}, 1000, 880},
		{"still failing at the end", []step{{true, 10, 11, 0}, {false, 20, 21, 0}}, 500, 480},
		{"a failure sent before the last answer", []step{{true, 10, 11, 0}, {true, 20, 30, 10}, {false, 25, 40, 0}, {true, 50, 51, 1}}, 60, 10},
		{"nothing before the first answer", []step{{false, 10, 11, 0}, {false, 20, 21, 0}, {true, 30, 31, 0}}, 40, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w waits
			for i, s := range tt.steps {
				if !s.ok {
					w.fail(ms(s.call))
					continue
				}
				if got, _ := w.ok(ms(s.call), ms(s.ret)); got != ms(s.wait) {
					t.Errorf("step %d: wait %v, want %v", i, got, ms(s.wait))
				}
			}
			w.close(ms(tt.end))
			if w.longest != ms(tt.longest) {
				t.Errorf("longest %v, want %v", w.longest, ms(tt.longest))
			}
		})
	}
}
