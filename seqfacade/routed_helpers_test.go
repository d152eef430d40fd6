package seqfacade_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/migsvc/mig/clock"
	"github.com/migsvc/mig/internal/etcdlocal"
	"github.com/migsvc/mig/internal/etcdlocal/etcdtest"
	"github.com/migsvc/mig/internal/faultproxy"
	"github.com/migsvc/mig/internal/lease"
	"github.com/migsvc/mig/loadtest"
	"github.com/migsvc/mig/seqfacade"
	"github.com/migsvc/mig/seqfacade/route"
)

// Test layout: uids 1..199 in sections of 10, groups of 2 sections: ten
// groups, group g holding uids 20g..20g+19.
const (
	testGroups   = 10
	uidsPerGroup = 20
)

// routedConfig is a node that fails over as fast as etcd allows: a 2 s
// lease, the default 1 s activation delay and 200 ms margin; planned
// rounds 300 ms apart, two moves each, and a narrow load band (10%), so
// that a node joining a busy cluster gets its third of the groups.
func routedConfig(name string) seqfacade.Config {
	return seqfacade.Config{
		NodeName:          name,
		Address:           name + ".test:7000",
		SectionSize:       10,
		GroupSize:         2,
		UIDLimit:          testGroups * uidsPerGroup,
		Step:              1000,
		Lease:             lease.Config{TTL: 2 * time.Second, RequestTimeout: 300 * time.Millisecond},
		RebalanceInterval: 300 * time.Millisecond,
		MaxMoves:          2,
		Tolerance:         0.1,
	}
}

// counting makes cfg's arbiter even group counts, never load (MinLoad
// above any load a test makes), with no cooldown to speak of: a node that
// registers after the first table gets its groups by balance moves, and
// groups that moved once (to the second node) would otherwise be held
// back for minutes.
func counting(cfg seqfacade.Config) seqfacade.Config {
	cfg.MinLoad, cfg.Cooldown = 1e12, time.Millisecond
	return cfg
}

// cluster is routed nodes in one process, each reaching one embedded etcd
// through a fault proxy of its own.
type cluster struct {
	t      *testing.T
	src    clock.Source
	ep     string
	direct *clientv3.Client
	mu     sync.Mutex
	nodes  map[string]*member
}

type member struct {
	name  string
	n     *seqfacade.Node
	cli   *clientv3.Client
	proxy *faultproxy.Proxy
}

func newCluster(t *testing.T) *cluster { return newClusterOn(t, etcdtest.Start(t)) }

// newClusterOn is newCluster on an etcd of the caller's.
func newClusterOn(t *testing.T, srv *etcdlocal.Server) *cluster {
	return &cluster{
		t:      t,
		src:    clock.NewReal(),
		ep:     srv.Endpoints()[0],
		direct: etcdtest.Client(t, srv.Endpoints()...),
		nodes:  map[string]*member{},
	}
}

// add starts a routed node (closed by Cleanup before its client).
func (c *cluster) add(cfg seqfacade.Config) *member {
	c.t.Helper()
	cli, p := proxied(c.t, c.ep)
	if os.Getenv("SEQ_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n, err := start(c.t, cli, cfg, c.src)
	if err != nil {
		c.t.Fatal(err)
	}
	m := &member{name: cfg.NodeName, n: n, cli: cli, proxy: p}
	c.mu.Lock()
	c.nodes[m.name] = m
	c.mu.Unlock()
	return m
}

// handOff is Config.HandOff between the cluster's nodes: the node whose
// address is addr answers, as rpc's peer service would.
func (c *cluster) handOff(ctx context.Context, addr string, groups []seqfacade.HandOffGroup) ([]seqfacade.HandedOff, error) {
	c.mu.Lock()
	var to *member
	for _, m := range c.nodes {
		if m.n.Config().Address == addr {
			to = m
		}
	}
	c.mu.Unlock()
	if to == nil {
		return nil, fmt.Errorf("no node at %s", addr)
	}
	return to.n.HandOff(ctx, groups)
}

func (c *cluster) node(name string) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

// routing returns the newest table any node has seen.
func (c *cluster) routing() route.Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	var r route.Table
	for _, m := range c.nodes {
		if mr := m.n.Routing(); mr.Version > r.Version {
			r = mr
		}
	}
	return r
}

// serving waits until every group is served by the node the table gives
// it to, among names, and that table has no other owner.
func (c *cluster) serving(within time.Duration, names ...string) route.Table {
	c.t.Helper()
	var r route.Table
	waitFor(c.t, "every group served by "+strings.Join(names, ","), within, func() bool {
		r = c.routing()
		if r.Version == 0 {
			return false
		}
		for g := range testGroups {
			o, _, ok := ownerOf(r, uint64(g*uidsPerGroup+1))
			if !ok || !slices.Contains(names, o) {
				return false
			}
			m := c.node(o)
			if _, err := m.n.Current(ctxT(c.t), uint64(g*uidsPerGroup+1)); err != nil {
				return false
			}
		}
		return true
	})
	return r
}

// recorder times calls on a clock and feeds the answers to a loadtest
// checker: per uid, no value twice and none below one answered before
// the call was made.
type recorder struct {
	t   *testing.T
	src clock.Source
	chk *loadtest.Checker
}

func newRecorder(t *testing.T, src clock.Source) *recorder {
	chk, err := loadtest.NewChecker(loadtest.CheckConfig{NoTimestamps: true, Start: src.Now(), PorcupineMaxOps: 500_000})
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{t: t, src: src, chk: chk}
}

// call is one answered call.
type call struct {
	node         string
	uid, v       uint64
	start, end   time.Duration
	err          error
	redirectedTo string
}

// next calls m.Next(uid) and records a value answered.
func (r *recorder) next(client int, m *member, uid uint64) call {
	ctx, cancel := context.WithTimeout(r.t.Context(), 500*time.Millisecond)
	defer cancel()
	c := call{node: m.name, uid: uid, start: r.src.Mono()}
	c.v, c.err = m.n.Next(ctx, uid)
	c.end = r.src.Mono()
	if c.err == nil {
		if err := r.chk.RecordSeqs(loadtest.SeqAnswer{Client: client, Endpoint: m.name, Call: c.start, Return: c.end, UIDs: []uint64{uid}, Seqs: []uint64{c.v}}); err != nil {
			r.t.Error(err)
		}
	}
	var no *seqfacade.NotOwnerError
	if errors.As(c.err, &no) {
		c.redirectedTo = no.Owner
	}
	return c
}

// check fails the test on any duplicate or rollback.
func (r *recorder) check() loadtest.Verdict {
	r.t.Helper()
	v := r.chk.Check()
	if !v.OK() {
		for _, d := range v.Details {
			r.t.Errorf("%s: %s", d.Kind, d.Message)
		}
		r.t.Fatalf("checker: %s", v.Summary())
	}
	r.t.Logf("checker: %s; porcupine: %+v", v.Summary(), v.Porcupine)
	return v
}

// load is clients calling Next on random uids, each routing by the
// newest table it has learnt from the nodes' answers, as the rpc client
// does: with none (or when the owner is dead) it asks any live node and
// follows the redirect. Each client's calls are sequential.
type load struct {
	c        *cluster
	rec      *recorder
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu struct {
		sync.Mutex
		dead  map[string]bool
		calls []call
	}
}

func (c *cluster) startLoad(rec *recorder, clients int) *load {
	l := &load{c: c, rec: rec, stop: make(chan struct{})}
	l.mu.dead = map[string]bool{}
	for i := range clients {
		l.wg.Go(func() { l.client(i) })
	}
	c.t.Cleanup(func() { l.finish() }) // if the test ends early; before the nodes close
	return l
}

// kill stops the clients from calling name (they cannot reach it any
// more).
func (l *load) kill(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.dead[name] = true
}

func (l *load) live() []string {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for n := range l.c.nodes {
		if !l.mu.dead[n] {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

func (l *load) isDead(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.dead[name]
}

func (l *load) add(c call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.calls = append(l.mu.calls, c)
}

func (l *load) calls() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mu.calls)
}

// finish stops the clients and returns every call made.
// failedSince counts, and logs, the calls started after begin that
// failed other than by a redirect.
func failedSince(t *testing.T, calls []call, begin time.Duration) int {
	failed := 0
	for _, call := range calls {
		if call.err != nil && call.redirectedTo == "" && call.start > begin {
			failed++
			t.Logf("failed call: %s uid %d: %v", call.node, call.uid, call.err)
		}
	}
	return failed
}

func (l *load) finish() []call {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
	return l.calls()
}

func (l *load) client(id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 42))
	var rt route.Table
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		uid := 1 + rng.Uint64N(testGroups*uidsPerGroup-1)
		target, _, ok := ownerOf(rt, uid)
		if !ok || l.isDead(target) {
			live := l.live()
			target = live[i%len(live)]
		}
		for hop := 0; hop < 2; hop++ {
			m := l.c.node(target)
			c := l.rec.next(id, m, uid)
			l.add(c)
			if r := m.n.Routing(); r.Version > rt.Version {
				rt = r // answers to stale clients carry the table
			}
			if c.redirectedTo == "" || l.isDead(c.redirectedTo) {
				if c.err != nil {
					<-l.c.src.After(10 * time.Millisecond)
				}
				break
			}
			target = c.redirectedTo
		}
	}
}

// firstServed returns, for each group, the first call after since that a
// node other than except answered with a value.
func firstServed(calls []call, since time.Duration, except string) map[int]call {
	first := map[int]call{}
	for _, c := range calls {
		g := int(c.uid / uidsPerGroup)
		if c.err != nil || c.start < since || c.node == except {
			continue
		}
		if f, ok := first[g]; !ok || c.end < f.end {
			first[g] = c
		}
	}
	return first
}

// etcdLog records every event under a prefix, as etcd ordered them.
type etcdLog struct {
	mu   sync.Mutex
	evs  []*clientv3.Event
	done chan struct{}
}

// record watches prefix from now until the test ends.
func (c *cluster) record(prefix string) *etcdLog {
	c.t.Helper()
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(c.t.Context()))
	resp, err := c.direct.Get(ctxT(c.t), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		c.t.Fatal(err)
	}
	l := &etcdLog{done: make(chan struct{})}
	wch := c.direct.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		defer close(l.done)
		for resp := range wch {
			l.mu.Lock()
			l.evs = append(l.evs, resp.Events...)
			l.mu.Unlock()
		}
	}()
	c.t.Cleanup(func() {
		cancel()
		<-l.done
	})
	return l
}

func (l *etcdLog) events() []*clientv3.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

// storedTable is the routing key's value as the tests read it.
type storedTable struct {
	Version uint64 `json:"version"`
	Groups  int    `json:"groups"`
	Ranges  []struct {
		First int    `json:"first"`
		Last  int    `json:"last"`
		Owner string `json:"owner"`
		Since uint64 `json:"since"`
	} `json:"ranges"`
}

func (s storedTable) owners() []string {
	o := make([]string, s.Groups)
	for _, r := range s.Ranges {
		for g := r.First; g <= r.Last; g++ {
			o[g] = r.Owner
		}
	}
	return o
}

// tables returns the routing tables written, in order, with their
// revisions.
func (l *etcdLog) tables(t *testing.T, key string) (ts []storedTable, revs []int64) {
	t.Helper()
	for _, ev := range l.events() {
		if string(ev.Kv.Key) != key || ev.Type != clientv3.EventTypePut {
			continue
		}
		var s storedTable
		if err := json.Unmarshal(ev.Kv.Value, &s); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, s)
		revs = append(revs, ev.Kv.ModRevision)
	}
	return ts, revs
}

// ownerOf returns the node r gives uid to and its address.
func ownerOf(r route.Table, uid uint64) (name, address string, ok bool) {
	o, ok := r.Lookup(uid)
	return o.Node, o.Address, ok
}

func groupOf(r route.Table, uid uint64) int {
	g, _ := r.Group(uid)
	return g
}
