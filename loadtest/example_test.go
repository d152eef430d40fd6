package loadtest_test

import (
	"fmt"
	"time"

	"github.com/migsvc/mig/loadtest"
)

// A uid's sequence that reads 101, 201, 102 to three requests made one
// after the other has rolled back; the checker names the values, the
// clients and when each request was sent and answered.
func ExampleChecker() {
	c, err := loadtest.NewChecker(loadtest.CheckConfig{NoTimestamps: true})
	if err != nil {
		panic(err)
	}
	for i, seq := range []uint64{101, 201, 102} {
		sent := time.Duration(i) * 10 * time.Millisecond
		c.RecordSeqs(loadtest.SeqAnswer{
			Client: i, Endpoint: "http://mig-1:7070",
			Call: sent, Return: sent + time.Millisecond,
			UIDs: []uint64{42}, Seqs: []uint64{seq},
		})
	}
	v := c.Check()
	fmt.Println(v.Summary())
	for _, d := range v.Details {
		fmt.Println(d.Kind+":", d.Message)
	}
	// Output:
	// FAILED: 1 violations (seq_rollback 1); 3 answers, 3 sequences of 1 uids
	// seq_rollback: uid 42 rolled back: client 1 from http://mig-1:7070 (sent +0.010000s, answered +0.011000s) got sequence 201, then client 2 from http://mig-1:7070 (sent +0.020000s, answered +0.021000s) got 102
}
