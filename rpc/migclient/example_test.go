package migclient_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twitchtv/twirp"

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

func ExampleClient_NextIDs() {
	srv, err := startLocalServer(false) // one worker on loopback: worker 7 of tokyo
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	c, err := migclient.New([]string{srv.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	ids, origin, err := c.NextIDs(ctx, 3)
	if err != nil {
		fmt.Println(err) // a twirp.Error: unavailable when no worker could issue
		return
	}
	fmt.Println(len(ids), "IDs from worker", origin.WorkerID, "in", origin.Datacenter)
	fmt.Println("strictly increasing:", ids[0] < ids[1] && ids[1] < ids[2])
	d, err := c.Decode(ctx, ids[2])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("the last one:", d.Time, "worker", d.Worker, "seq", d.Seq)

	_, _, err = c.NextIDs(ctx, 0) // refused before it is sent, as the server would
	var twerr twirp.Error
	if errors.As(err, &twerr) {
		fmt.Println(twerr.Code(), twerr.Meta("argument"), twerr.Msg())
	}
	// Output:
	// 3 IDs from worker 7 in tokyo
	// strictly increasing: true
	// the last one: 2025-01-02 00:00:00 +0000 UTC worker 7 seq 2
	// invalid_argument count count 0 is not in 1..100000
}

func ExampleClient_NextSeq() {
	srv, err := startLocalServer(true) // one node on loopback, its sequences in an embedded etcd
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	c, err := migclient.New([]string{srv.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The client sends each call to the node that serves the uid; with
	// one node, this one.
	for range 3 {
		seq, err := c.NextSeq(ctx, 42)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("uid 42:", seq)
	}
	seqs, err := c.NextSeqs(ctx, []uint64{42, 7}) // a group message: every member's sequence
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("uids 42 and 7:", seqs)
	cur, err := c.CurSeq(ctx, 42) // the latest, not advanced
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("uid 42 now:", cur)

	_, err = c.NextSeq(ctx, 0)
	var twerr twirp.Error // the server's refusal, as it gave it
	if errors.As(err, &twerr) {
		fmt.Println(twerr.Code(), twerr.Meta("argument"), twerr.Msg())
	}
	// Output:
	// uid 42: 1
	// uid 42: 2
	// uid 42: 3
	// uids 42 and 7: [4 1]
	// uid 42 now: 4
	// invalid_argument uid uid 0 is not in 1..4294967295
}
