package workerid_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/workerid"
)

// TestClaimDeletedFences: an operator deletes worker A's claim key. A's
// lease is untouched and its renewals go on, so neither its deadline nor
// its next watermark extension (five seconds off, with a 10 s window)
// would stop it soon, while B could claim the ID at once and issue IDs
// that A's fall below. A's watch on its claim fences it as soon as etcd
// reports the delete.
func TestClaimDeletedFences(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.Client(t, srv.Endpoints()...)
	cfg := fastConfig("tokyo", workerid.Range{First: 4, Last: 4})
	cfg.Window = 10 * time.Second
	real := clock.NewReal()
	a := mustStart(t, cli, cfg, real)
	idsA := take(t, a, 10)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, "/mig/workers/04"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A to fence", 2*time.Second, func() bool {
		_, err := a.Next()
		return errors.Is(err, workerid.ErrNotHeld)
	})
	b := mustStart(t, cli, cfg, real)
	idsB := take(t, b, 10)
	assertAllAbove(t, idsB, idsA)
	if id, err := a.Next(); err == nil {
		t.Errorf("A issued %d after B claimed its worker ID", id)
	}
}
