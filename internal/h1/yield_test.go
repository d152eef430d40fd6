package h1

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

// TestYieldWhileBusy serves 40 requests on one connection, each read on
// its own, and counts the yields before the reads (41, the last finding
// the connection closed). While yields let other goroutines run (the
// clock moves during each) the connection yields before every read; while
// they return at once, it yields once and then reads yieldPause times
// without.
func TestYieldWhileBusy(t *testing.T) {
	for _, tc := range []struct {
		name string
		ran  time.Duration // how long each yield let others run
		want int
	}{
		{"busy", busyYield, 41},
		{"idle", busyYield - time.Nanosecond, 3}, // awaits 1, 18 and 35
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			yields := 0
			s := &Server{
				Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
				Clock:   m,
				gosched: func() { yields++; m.Advance(tc.ran) },
			}
			s.init()
			const req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
			nc := &streamConn{in: []byte(strings.Repeat(req, 40)), step: len(req)}
			c := newConn(s, nc)
			s.trackConn(c, true)
			c.serve()
			if got := strings.Count(nc.out.String(), "HTTP/1.1 200 OK"); got != 40 {
				t.Fatalf("%d answers, want 40", got)
			}
			if yields != tc.want {
				t.Errorf("%d yields, want %d", yields, tc.want)
			}
		})
	}
}
