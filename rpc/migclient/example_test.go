package migclient_test

import (
	"context"
	"fmt"
	"time"

	"github.com/migsvc/mig/rpc/migclient"
)

func Example() {
	// Endpoints of the application's own datacenter; any of them serves.
	c, err := migclient.New([]string{"mig-1.tokyo:7070", "mig-2.tokyo:7070", "mig-3.tokyo:7070"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ids, origin, err := c.NextIDs(ctx, 10)
	if err != nil {
		fmt.Println(err) // a twirp.Error: unavailable when no worker could issue
		return
	}
	fmt.Println(len(ids), "IDs from worker", origin.WorkerID, "in", origin.Datacenter)

	seq, err := c.NextSeq(ctx, 42) // to the node that serves uid 42, wherever it is
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("uid 42 is at", seq)
}

func ExampleWithRemote() {
	// A client in tokyo. IDs come from tokyo's workers while any of them
	// answers, then from osaka's, then nagoya's; sequences go to the node
	// that serves the uid, in whichever datacenter it is.
	c, err := migclient.New([]string{"mig-1.tokyo:7070", "mig-2.tokyo:7070"},
		migclient.WithRemote("osaka", "mig-1.osaka:7070", "mig-2.osaka:7070"),
		migclient.WithRemote("nagoya", "mig-1.nagoya:7070"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseIdleConnections()
	// Use c as in the package example.
}
