package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: microseconds from 1 µs to 10 minutes, three
// significant digits (0.1% error). Longer latencies are recorded as 10
// minutes: no request lives that long (Timeout is at most MaxTimeout),
// but an open loop that fell far behind its schedule can.
const (
	histMin    = 1
	histMax    = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

func micros(d time.Duration) int64 {
	return min(max(int64(d/time.Microsecond), histMin), histMax)
}

// Latency summarizes a histogram, in microseconds. A plain value.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Mean:  h.Mean(),
		P50:   float64(h.ValueAtQuantile(50)),
		P90:   float64(h.ValueAtQuantile(90)),
		P99:   float64(h.ValueAtQuantile(99)),
		P999:  float64(h.ValueAtQuantile(99.9)),
		Max:   float64(h.Max()),
	}
}

// tally is what requests added up to over some time.
type tally struct {
	ok, errs, canceled, values int64
	codes                      map[string]int64     // errors by code
	answers                    map[string]int64     // answers by endpoint, where known
	failures                   map[failureKey]int64 // failed attempts
}

func (t *tally) add(o tally) {
	t.ok += o.ok
	t.errs += o.errs
	t.canceled += o.canceled
	t.values += o.values
	t.codes = addCounts(t.codes, o.codes)
	t.answers = addCounts(t.answers, o.answers)
	t.failures = addCounts(t.failures, o.failures)
}

// addCounts adds the counts of from to to, made when needed.
func addCounts[K comparable](to, from map[K]int64) map[K]int64 {
	if len(from) > 0 && to == nil {
		to = make(map[K]int64, len(from))
	}
	for k, n := range from {
		to[k] += n
	}
	return to
}

// count adds one to m[k], making m when needed.
func count[K comparable](m *map[K]int64, k K) {
	if *m == nil {
		*m = make(map[K]int64)
	}
	(*m)[k]++
}

// shard is where some of the clients record their requests: one lock per
// few clients keeps the cost of recording low under many clients.
type shard struct {
	mu struct {
		sync.Mutex
		hist *hdrhistogram.Histogram
		lag  *hdrhistogram.Histogram // open loop: send time - due time
		tally
	}
}

// recorder gathers latencies and counts from the clients. record is safe
// for concurrent use; drain is called by one goroutine at a time.
type recorder struct {
	shards []*shard
}

func newRecorder(clients, procs int) *recorder {
	n := min(clients, max(2*procs, 1))
	r := &recorder{shards: make([]*shard, n)}
	for i := range r.shards {
		s := &shard{}
		s.mu.hist, s.mu.lag = newHist(), newHist()
		r.shards[i] = s
	}
	return r
}

// record counts one completed request of client: its latency, how late
// it was sent (open loop; negative for none), the values it brought, the
// endpoint that answered ("" if unknown) and, if it failed, its error
// code.
func (r *recorder) record(client int, lat, lag time.Duration, values int, from, code string) {
	s := r.shards[client%len(r.shards)]
	s.mu.Lock()
	defer s.mu.Unlock()
	// RecordValue fails only outside the geometry, which micros prevents.
	_ = s.mu.hist.RecordValue(micros(lat))
	if lag >= 0 {
		_ = s.mu.lag.RecordValue(micros(lag))
	}
	if code == "" {
		s.mu.ok++
		s.mu.values += int64(values)
		if from != "" {
			count(&s.mu.answers, from)
		}
		return
	}
	s.mu.errs++
	count(&s.mu.codes, code)
}

// failed counts an attempt of client's that failed at endpoint for cause.
func (r *recorder) failed(client int, endpoint, cause string) {
	s := r.shards[client%len(r.shards)]
	s.mu.Lock()
	defer s.mu.Unlock()
	count(&s.mu.failures, failureKey{endpoint, cause})
}

// canceled counts a request abandoned because the caller's context ended.
func (r *recorder) canceled(client int) {
	s := r.shards[client%len(r.shards)]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.canceled++
}

// drain moves the latencies the shards hold into into, their send lags
// into lag, and returns the counts.
func (r *recorder) drain(into, lag *hdrhistogram.Histogram) tally {
	var t tally
	for _, s := range r.shards {
		s.mu.Lock()
		into.Merge(s.mu.hist)
		s.mu.hist.Reset()
		lag.Merge(s.mu.lag)
		s.mu.lag.Reset()
		t.add(s.mu.tally)
		s.mu.tally = tally{}
		s.mu.Unlock()
	}
	return t
}
