package h1

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

// TestDeadlinesFollowMonotonicClock serves four requests, one a read,
// while the wall clock steps back an hour and then forward two, and then
// an idle timeout's worth of time passes. Deadlines live in monotonic
// time: the steps move none of them (with deadlines computed in wall
// time, each step looked like a deadline far off or long passed, and was
// set again), and the one set after time passed is that much later than
// the wall clock read with it.
func TestDeadlinesFollowMonotonicClock(t *testing.T) {
	wall0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := clock.NewManual(wall0)
	s := &Server{
		Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		Clock:             m,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	s.init()
	const req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
	nc := &streamConn{in: []byte(strings.Repeat(req, 4)), step: len(req)}
	nc.onRead = func(n int) {
		switch n {
		case 2:
			m.StepBack(time.Hour)
		case 3:
			m.StepForward(2 * time.Hour)
		case 4:
			m.Advance(2 * time.Minute)
		}
	}
	c := newConn(s, nc)
	s.trackConn(c, true)
	c.serve()

	if got := strings.Count(nc.out.String(), "HTTP/1.1 200 OK"); got != 4 {
		t.Fatalf("%d answers, want 4: %q", got, nc.out.String())
	}
	for _, tc := range []struct {
		name      string
		got, want []time.Time
	}{
		{"read", nc.readDeadlines, []time.Time{
			wall0.Add(5 * time.Second), // the first request's header, from the accept
			wall0.Add(2 * time.Minute), // idle, before the second request
			// idle before the end: set at monotonic 2m, when the wall
			// clock read wall0+1h+2m
			wall0.Add(time.Hour + 4*time.Minute),
		}},
		{"write", nc.writeDeadlines, []time.Time{
			wall0.Add(30 * time.Second),
			wall0.Add(time.Hour + 2*time.Minute + 30*time.Second),
		}},
	} {
		if !slices.EqualFunc(tc.got, tc.want, time.Time.Equal) {
			t.Errorf("%s deadlines set: %v\nwant %v", tc.name, tc.got, tc.want)
		}
	}
}
