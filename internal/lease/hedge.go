package lease

import (
	"context"
	"sync"
	"time"

	"github.com/migsvc/mig/clock"
)

// Hedged runs call and, if it has not answered within after, a second
// call beside it; it returns the first success, or, once both failed,
// the second's error. Both calls have returned when it does.
//
// Why: an etcd member cut off without a reset keeps its connection open
// until gRPC's keepalive gives up (seconds), and the client's round robin
// keeps sending it a share of the calls, which then hang until their
// timeout. A renewal or a confirmation that hangs on it would cost a node
// its right to serve, or its lease, while two members answer at once. Only
// for calls that are safe to send twice: a keep-alive, a read.
//
// Each call measures what it needs itself (a renewal its send time):
// the result of the call that answered is the one returned.
func Hedged[T any](ctx context.Context, src clock.Source, after time.Duration, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		v   T
		err error
	}
	results := make(chan result, 2)
	var wg sync.WaitGroup
	defer func() {
		cancel() // the call still running, if any, returns
		wg.Wait()
	}()
	launch := func() {
		wg.Go(func() {
			v, err := call(ctx)
			results <- result{v, err}
		})
	}
	launch()
	launched, failed := 1, 0
	hedge := src.After(after)
	var last result
	for {
		select {
		case r := <-results:
			if r.err == nil {
				return r.v, nil // the deferred cancel and wait end the other call
			}
			failed++
			last = r
			if failed == launched {
				// Both failed, or the first did before the hedge was due
				// (no second chance, as without hedging).
				return last.v, last.err
			}
		case <-hedge:
			hedge = nil
			if launched == 1 && failed == 0 {
				launched++
				launch()
			}
		}
	}
}
