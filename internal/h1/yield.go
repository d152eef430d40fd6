package h1

import "time"

const (
	// busyYield is how long a yield must have let other goroutines run for
	// the server to count as busy: about the time one request takes.
	busyYield = 2 * time.Microsecond
	// yieldPause is how many requests a connection reads without yielding
	// after a yield that found the server idle, before it tries again.
	yieldPause = 16
)

// yield lets the other connections' goroutines run before this one reads
// its next request, while the server is busy. Then the client's next
// request is mostly there to read when the goroutine runs again; a read
// right after the answer is refused, the goroutine parks and the poller
// must wake it: two system calls and a wake-up saved a request (measured
// in docs/benchmarks.md). On an idle server a yield costs the scheduler
// the wake-up of an idle processor for nothing, so after a yield that
// returned at once the connection reads without yielding for yieldPause
// requests.
//
// Whether a yield paid cannot tell: on a busy server a quarter of the
// reads after one still wait, and connections that stopped yielding on
// that would leave the others fewer goroutines to wait behind, and so
// more reads that wait, until none yields.
func (c *conn) yield() {
	if c.br.Buffered() > 0 {
		return
	}
	if c.skipYield > 0 {
		c.skipYield--
		return
	}
	start := c.srv.clock.Mono()
	c.srv.gosched()
	if c.srv.clock.Mono()-start < busyYield {
		c.skipYield = yieldPause
	}
}
