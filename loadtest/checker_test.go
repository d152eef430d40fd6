package loadtest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/mig"
)

var (
	layout = mig.DefaultLayout()
	// start is the run's start: one day after the epoch, monotonic 0.
	start = clock.Reading{Wall: layout.Epoch().Add(24 * time.Hour), Mono: 0}
)

const ms = time.Millisecond

// idAt returns the ID of worker w with sequence seq in the tick of the
// run's time at (an offset from start).
func idAt(t testing.TB, at time.Duration, w, seq uint32) mig.ID {
	t.Helper()
	id, err := layout.Compose(layout.TickOf(start.Wall.Add(at).UnixNano()), w, seq)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// ids returns n consecutive IDs from worker w's tick at `at`, from seq on.
func ids(t testing.TB, at time.Duration, w, seq uint32, n int) []mig.ID {
	out := make([]mig.ID, n)
	for i := range out {
		out[i] = idAt(t, at, w, seq+uint32(i))
	}
	return out
}

// op is one entry of a hand-made history.
type op struct {
	client    int
	server    loadtest.Server
	call, ret time.Duration
	ids       []mig.ID // an ID answer, or
	uids      []uint64 // a sequence answer
	seqs      []uint64
	bad       error // a refused answer
}

var (
	s1 = loadtest.Server{Endpoint: "http://127.0.0.1:7001", WorkerID: 1}
	s2 = loadtest.Server{Endpoint: "http://127.0.0.1:7002", WorkerID: 2}
)

func newChecker(t testing.TB, cfg loadtest.CheckConfig) *loadtest.Checker {
	t.Helper()
	if cfg.Start.Wall.IsZero() && !cfg.NoTimestamps {
		cfg.Start = start
	}
	c, err := loadtest.NewChecker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func record(t testing.TB, c *loadtest.Checker, h []op) {
	t.Helper()
	for _, o := range h {
		var err error
		switch {
		case o.bad != nil:
			err = c.RecordBadAnswer(o.client, o.server.Endpoint, o.call, o.ret, o.bad)
		case o.ids != nil:
			err = c.RecordIDs(loadtest.IDAnswer{Client: o.client, Server: o.server, Call: o.call, Return: o.ret, IDs: o.ids})
		default:
			err = c.RecordSeqs(loadtest.SeqAnswer{Client: o.client, Endpoint: o.server.Endpoint, Call: o.call, Return: o.ret, UIDs: o.uids, Seqs: o.seqs})
		}
		if err != nil {
			t.Fatalf("recording %+v: %v", o, err)
		}
	}
}

func seq(client int, call, ret time.Duration, uid, v uint64) op {
	return op{client: client, server: s1, call: call, ret: ret, uids: []uint64{uid}, seqs: []uint64{v}}
}

func TestCheckerHistories(t *testing.T) {
	a := func(client int, srv loadtest.Server, call, ret time.Duration, v []mig.ID) op {
		return op{client: client, server: srv, call: call, ret: ret, ids: v}
	}
	tests := []struct {
		name    string
		history []op
		want    map[string]int64 // violations by kind; nil: none
		// mention holds texts every violation's message must contain,
		// by kind (values, clients, servers).
		mention map[string][]string
	}{
		{
			name: "sequential IDs from one server",
			history: []op{
				a(0, s1, 0, 1*ms, ids(t, 0, 1, 0, 10)),
				a(1, s1, 2*ms, 3*ms, ids(t, 2*ms, 1, 10, 10)),
				a(0, s1, 4*ms, 5*ms, ids(t, 4*ms, 1, 20, 1)),
			},
		},
		{
			name: "concurrent requests answered in either order",
			history: []op{
				// Client 0 sent first but got the higher IDs: they overlapped.
				a(0, s1, 0, 10*ms, ids(t, 0, 1, 100, 10)),
				a(1, s1, 1*ms, 5*ms, ids(t, 0, 1, 0, 10)),
				// Touching intervals are concurrent too (closed intervals).
				a(2, s1, 10*ms, 11*ms, ids(t, 0, 1, 50, 10)),
			},
		},
		{
			name: "two servers interleave, each increasing",
			history: []op{
				a(0, s1, 0, 1*ms, ids(t, 0, 1, 5, 1)),
				a(1, s2, 2*ms, 3*ms, ids(t, 0, 2, 1, 1)),
				a(0, s1, 10*ms, 11*ms, ids(t, 10*ms, 1, 0, 1)),
				a(1, s2, 12*ms, 13*ms, ids(t, 10*ms, 2, 0, 1)),
			},
		},
		{
			name: "a duplicate ID across servers",
			history: []op{
				a(0, s1, 0, 1*ms, []mig.ID{idAt(t, 0, 1, 7)}),
				a(3, s2, 0, 2*ms, []mig.ID{idAt(t, 0, 1, 6), idAt(t, 0, 1, 7), idAt(t, 0, 1, 8)}),
			},
			want:    map[string]int64{loadtest.KindDuplicateID: 1},
			mention: map[string][]string{loadtest.KindDuplicateID: {idAt(t, 0, 1, 7).String() + " received twice", "client 0", "client 3", s1.String(), s2.String()}},
		},
		{
			name: "a duplicate within one answer",
			history: []op{
				a(0, s1, 0, 1*ms, []mig.ID{idAt(t, 0, 1, 7), idAt(t, 0, 1, 7)}),
			},
			want: map[string]int64{loadtest.KindDuplicateID: 1, loadtest.KindIDOrder: 1},
			mention: map[string][]string{
				loadtest.KindDuplicateID: {idAt(t, 0, 1, 7).String()},
				loadtest.KindIDOrder:     {"not strictly increasing within one answer", idAt(t, 0, 1, 7).String()},
			},
		},
		{
			name: "a backwards step for one server",
			history: []op{
				a(0, s1, 0, 1*ms, ids(t, 0, 1, 500, 10)),
				a(1, s2, 0, 1*ms, ids(t, 0, 2, 0, 1)),
				a(1, s1, 2*ms, 3*ms, ids(t, 0, 1, 400, 10)),
			},
			want: map[string]int64{loadtest.KindIDOrder: 1},
			mention: map[string][]string{loadtest.KindIDOrder: {
				s1.String() + " went backwards",
				"client 0", idAt(t, 0, 1, 500).String() + ".." + idAt(t, 0, 1, 509).String(),
				"client 1", idAt(t, 0, 1, 400).String() + ".." + idAt(t, 0, 1, 409).String(),
				"answered +0.001000s", "sent +0.002000s",
			}},
		},
		{
			name: "answers overlapping in range, one after the other",
			history: []op{
				a(0, s1, 0, 1*ms, []mig.ID{idAt(t, 0, 1, 1), idAt(t, 0, 1, 5)}),
				a(0, s1, 2*ms, 3*ms, []mig.ID{idAt(t, 0, 1, 3), idAt(t, 0, 1, 9)}),
			},
			want: map[string]int64{loadtest.KindIDOrder: 1},
		},
		{
			name: "timestamp an hour ahead",
			history: []op{
				a(0, s1, 0, 1*ms, []mig.ID{idAt(t, time.Hour, 1, 0)}),
			},
			want:    map[string]int64{loadtest.KindIDTime: 1},
			mention: map[string][]string{loadtest.KindIDTime: {idAt(t, time.Hour, 1, 0).String(), "client 0", s1.String(), "has time 2025-01-02T01:00:00Z"}},
		},
		{
			name: "timestamp before the request",
			history: []op{
				a(0, s1, 10*time.Second, 10*time.Second+ms, []mig.ID{idAt(t, 5*time.Second, 1, 0)}),
			},
			want:    map[string]int64{loadtest.KindIDTime: 1},
			mention: map[string][]string{loadtest.KindIDTime: {idAt(t, 5*time.Second, 1, 0).String()}},
		},
		{
			name: "timestamps within borrow and tolerance",
			history: []op{
				a(0, s1, 10*time.Second, 10*time.Second+ms, []mig.ID{idAt(t, 9*time.Second+10*ms, 1, 0), idAt(t, 11*time.Second+500*ms, 1, 1)}),
			},
		},
		{
			name: "per-uid rollback 101, 201, 102",
			history: []op{
				seq(0, 0, 1*ms, 42, 101),
				seq(1, 2*ms, 3*ms, 42, 201),
				seq(2, 4*ms, 5*ms, 42, 102),
			},
			want: map[string]int64{loadtest.KindSeqRollback: 1},
			mention: map[string][]string{loadtest.KindSeqRollback: {
				"uid 42 rolled back", "client 1", "got sequence 201", "client 2", "got 102", "answered +0.003000s", "sent +0.004000s",
			}},
		},
		{
			name: "a duplicate sequence",
			history: []op{
				seq(0, 0, 5*ms, 7, 3),
				seq(1, 1*ms, 4*ms, 7, 3),
				seq(1, 1*ms, 4*ms, 8, 3), // another uid may have the same value
			},
			want:    map[string]int64{loadtest.KindSeqDuplicate: 1},
			mention: map[string][]string{loadtest.KindSeqDuplicate: {"uid 7: sequence 3 handed out twice", "client 0", "client 1"}},
		},
		{
			name: "concurrent sequences in either order, with gaps",
			history: []op{
				seq(0, 0, 10*ms, 1, 102),
				seq(1, 1*ms, 5*ms, 1, 101),
				seq(2, 6*ms, 9*ms, 1, 103),
				seq(1, 11*ms, 12*ms, 1, 10_001), // a restart skips ahead
				{client: 3, server: s1, call: 13 * ms, ret: 14 * ms, uids: []uint64{1, 2, 3}, seqs: []uint64{10_002, 1, 1}},
			},
		},
		{
			name: "a batch answer with the wrong number of sequences",
			history: []op{
				{client: 3, server: s1, call: 0, ret: ms, uids: []uint64{1, 2, 3}, seqs: []uint64{1, 1}},
			},
			want:    map[string]int64{loadtest.KindBadAnswer: 1},
			mention: map[string][]string{loadtest.KindBadAnswer: {"2 sequences for 3 uids", "client 3"}},
		},
		{
			name: "an answer the client refused",
			history: []op{
				{client: 4, server: s1, call: 0, ret: ms, bad: errors.New("rpc: invalid answer from server: ID 5 at index 1")},
			},
			want:    map[string]int64{loadtest.KindBadAnswer: 1},
			mention: map[string][]string{loadtest.KindBadAnswer: {"client 4", "ID 5 at index 1"}},
		},
		{
			name:    "an answer with no IDs",
			history: []op{a(0, s1, 0, ms, []mig.ID{})},
			want:    map[string]int64{loadtest.KindBadAnswer: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker(t, loadtest.CheckConfig{})
			record(t, c, tt.history)
			v := c.Check()
			var total int64
			for _, n := range tt.want {
				total += n
			}
			if v.Violations != total || v.OK() != (total == 0) {
				t.Errorf("%d violations, OK %v; want %d:\n%s", v.Violations, v.OK(), total, details(v))
			}
			for kind, n := range tt.want {
				if v.ByKind[kind] != n {
					t.Errorf("%d %s violations, want %d:\n%s", v.ByKind[kind], kind, n, details(v))
				}
			}
			for _, d := range v.Details {
				for _, m := range tt.mention[d.Kind] {
					if !strings.Contains(d.Message, m) {
						t.Errorf("%s violation %q does not mention %q", d.Kind, d.Message, m)
					}
				}
			}
			if v.Seqs > 0 && !v.Porcupine.Ran {
				t.Errorf("porcupine did not run: %+v", v.Porcupine)
			}
			if v.Porcupine.Illegal > 0 != (tt.want[loadtest.KindSeqRollback]+tt.want[loadtest.KindSeqDuplicate] > 0) {
				t.Errorf("porcupine: %+v, want illegal iff a sequence violation", v.Porcupine)
			}
		})
	}
}

func details(v loadtest.Verdict) string {
	var b strings.Builder
	b.WriteString(v.Summary())
	for _, d := range v.Details {
		b.WriteString("\n  " + d.Kind + ": " + d.Message)
	}
	return b.String()
}

func TestCheckerLimits(t *testing.T) {
	c := newChecker(t, loadtest.CheckConfig{MaxRecords: 5, MaxReported: 1})
	// Each answer of consecutive IDs is two records: the answer and a run.
	for i := range 2 {
		if err := c.RecordIDs(loadtest.IDAnswer{Server: s1, Call: time.Duration(i) * ms, Return: time.Duration(i) * ms, IDs: ids(t, 0, 1, uint32(i*10), 10)}); err != nil {
			t.Fatal(err)
		}
	}
	err := c.RecordIDs(loadtest.IDAnswer{Server: s1, Call: 5 * ms, Return: 6 * ms, IDs: ids(t, 0, 1, 100, 1)})
	if !errors.Is(err, loadtest.ErrHistoryFull) {
		t.Fatalf("third answer: %v, want ErrHistoryFull", err)
	}
	if err := c.RecordIDs(loadtest.IDAnswer{Server: s1, Call: 5 * ms, Return: 4 * ms}); !errors.Is(err, loadtest.ErrInvalidAnswer) {
		t.Fatalf("answer before its request: %v, want ErrInvalidAnswer", err)
	}
	v := c.Check()
	if v.Unrecorded != 1 || v.Answers != 2 || v.IDs != 20 || !v.OK() {
		t.Errorf("verdict %+v", v)
	}
	if !strings.Contains(v.Summary(), "1 answers NOT checked") {
		t.Errorf("summary %q does not warn of the unchecked answer", v.Summary())
	}

	// Only MaxReported violations are described; all are counted.
	c = newChecker(t, loadtest.CheckConfig{MaxReported: 1})
	record(t, c, []op{
		seq(0, 0, 1*ms, 1, 5), seq(0, 2*ms, 3*ms, 1, 4),
		seq(0, 0, 1*ms, 2, 5), seq(0, 2*ms, 3*ms, 2, 4),
	})
	v = c.Check()
	if v.Violations != 2 || len(v.Details) != 1 || v.ByKind[loadtest.KindSeqRollback] != 2 {
		t.Errorf("verdict %s", details(v))
	}
}

func TestCheckConfigValidate(t *testing.T) {
	tests := []struct {
		cfg   loadtest.CheckConfig
		field string // "" for valid
	}{
		{loadtest.CheckConfig{Start: start}, ""},
		{loadtest.CheckConfig{NoTimestamps: true}, ""},
		{loadtest.CheckConfig{}, "Start"},
		{loadtest.CheckConfig{Start: start, Tolerance: -1}, "Tolerance"},
		{loadtest.CheckConfig{Start: start, Ahead: -1}, "Ahead"},
		{loadtest.CheckConfig{Start: start, MaxRecords: -1}, "MaxRecords"},
		{loadtest.CheckConfig{Start: start, MaxReported: -1}, "MaxReported"},
		{loadtest.CheckConfig{Start: start, PorcupineTimeout: -1}, "PorcupineTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			checkFieldErr(t, tt.cfg.Validate(), tt.field)
			_, err := loadtest.NewChecker(tt.cfg)
			checkFieldErr(t, err, tt.field)
		})
	}
}

func checkFieldErr(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Errorf("error %v, want none", err)
		}
		return
	}
	var fe *loadtest.FieldError
	if !errors.As(err, &fe) || fe.Field != field || !errors.Is(err, loadtest.ErrConfig) {
		t.Errorf("error %v, want a FieldError about %s wrapping ErrConfig", err, field)
	}
}
