package rpc_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/mig"
	"github.com/migsvc/mig/rpc"
	"github.com/migsvc/mig/rpc/migclient"
)

// exampleIssuer issues from a generator whose clock stands still at t0; a
// worker would be a *workerid.Worker.
type exampleIssuer struct{ *mig.Generator }

func (exampleIssuer) Layout() mig.Layout { return testLayout }
func (exampleIssuer) Datacenter() string { return "tokyo" }

func Example() {
	gen, err := mig.New(mig.Config{Layout: testLayout, Worker: 7},
		manualClock{Manual: clock.NewManual(t0), start: t0.UnixNano()}, mig.NewMemCeiling(mig.MaxTick))
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := rpc.NewServer(exampleIssuer{gen})
	if err != nil {
		fmt.Println(err)
		return
	}
	ts := httptest.NewServer(srv.Handler()) // any http.Server; mig serve adds FastHandlers on internal/h1
	defer ts.Close()

	c, err := migclient.New([]string{ts.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()
	ids, origin, err := c.NextIDs(ctx, 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(ids), "IDs from worker", origin.WorkerID, "in", origin.Datacenter)
	d, err := c.Decode(ctx, ids[2])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.ID, d.Time, "worker", d.Worker, "seq", d.Seq)
	// Output:
	// 3 IDs from worker 7 in tokyo
	// 144955148075010 2025-01-02 00:00:00 +0000 UTC worker 7 seq 2
}
