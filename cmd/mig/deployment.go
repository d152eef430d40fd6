package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

type mvccKV = mvccpb.KeyValue

// This file reads what a deployment keeps in etcd, for `mig status` and
// `mig seq-raise`. The formats are those of packages workerid (meta.go,
// claim.go, worker.go) and seqfacade (meta.go, codec.go, routed.go,
// table.go); they are parsed here with small structs of our own rather
// than by exporting those packages' internals, so that a change to a
// format there shows up as a failing status test here.
//
// Keys under the prefix (default /mig):
//
//	layout              {"epoch","tick","tick_bits","worker_bits","seq_bits"}
//	cluster             {"datacenter"}: the datacenter this cluster serves
//	datacenters/<dc>    {"first","last"}: a datacenter's worker-ID range
//	workers/<NN>        {"datacenter","holder","lease"}, under the holder's lease
//	watermarks/<NN>     {"tick","time"}: the worker ID's time watermark
//	seq/config          {"section_size","group_size","uid_limit","step","format","homes","datacenter"}
//	seq/nodes/<name>    {"node","lease","address","datacenter","weight","draining"}, under its lease
//	seq/load/<name>     {"groups":{"<g>": calls/s}}
//	seq/arbiter         the arbiter's node name, under its lease
//	seq/routing         {"version","groups","ranges":[...],"members":{...}}
//	seq/groups/<8 hex>  format byte 1, then 8 bytes little-endian a section: max_seq

// seqGroupFormat is the first byte of a group's persisted value
// (seqfacade/codec.go): the only format there is.
const seqGroupFormat = 1

// idLayoutRecord is <prefix>/layout.
type idLayoutRecord struct {
	Epoch      string `json:"epoch"`
	Tick       string `json:"tick"`
	TickBits   int    `json:"tick_bits"`
	WorkerBits int    `json:"worker_bits"`
	SeqBits    int    `json:"seq_bits"`
}

// clusterRecord is <prefix>/cluster.
type clusterRecord struct {
	Datacenter string `json:"datacenter"`
}

// workerRangeRecord is <prefix>/datacenters/<dc>.
type workerRangeRecord struct {
	First uint32 `json:"first"`
	Last  uint32 `json:"last"`
}

// claimRecord is <prefix>/workers/<NN>.
type workerClaimRecord struct {
	Datacenter string `json:"datacenter"`
	Holder     string `json:"holder"`
	Lease      string `json:"lease"`
}

// watermarkRecord is <prefix>/watermarks/<NN>.
type workerWatermarkRecord struct {
	Tick int64  `json:"tick"`
	Time string `json:"time"`
}

// seqConfigRecord is <prefix>/seq/config.
type seqConfigRecord struct {
	SectionSize uint64 `json:"section_size"`
	GroupSize   int    `json:"group_size"`
	UIDLimit    uint64 `json:"uid_limit"`
	Step        uint64 `json:"step"`
	Format      int    `json:"format"`
	Homes       string `json:"homes,omitempty"`
	Datacenter  string `json:"datacenter,omitempty"`
}

// seqNodeRecord is <prefix>/seq/nodes/<name>.
type seqNodeRecord struct {
	Node       string  `json:"node"`
	Lease      string  `json:"lease"`
	Address    string  `json:"address"`
	Datacenter string  `json:"datacenter"`
	Weight     float64 `json:"weight"`
	Draining   bool    `json:"draining"`
}

// seqLoadRecord is <prefix>/seq/load/<name>.
type seqLoadRecord struct {
	Groups map[string]float64 `json:"groups"`
}

// routingRecord is <prefix>/seq/routing.
type routingRecord struct {
	Version uint64 `json:"version"`
	Groups  int    `json:"groups"`
	Ranges  []struct {
		First int    `json:"first"`
		Last  int    `json:"last"`
		Owner string `json:"owner"`
		Since uint64 `json:"since"`
	} `json:"ranges"`
	Members map[string]struct {
		Address    string `json:"address"`
		Datacenter string `json:"datacenter"`
		Reg        int64  `json:"reg"`
	} `json:"members"`
}

// seqLayout is the uid space a seq/config describes: how many groups of
// how many sections (seqfacade/layout.go).
type seqLayout struct {
	sectionSize, uidLimit uint64
	groupSize             int
	sections, groups      int
}

// maxLayoutSections bounds the sections of a layout read from etcd, as
// seqfacade.MaxSections does for a configured one.
const maxLayoutSections = 1 << 22

func newSeqLayout(sectionSize, uidLimit uint64, groupSize int) (seqLayout, error) {
	if sectionSize == 0 || uidLimit == 0 || groupSize <= 0 {
		return seqLayout{}, fmt.Errorf("section size %d, uid limit %d, group size %d: each must be at least 1", sectionSize, uidLimit, groupSize)
	}
	n := uidLimit / sectionSize
	if uidLimit%sectionSize != 0 {
		n++
	}
	if n > maxLayoutSections {
		return seqLayout{}, fmt.Errorf("uid limit %d in sections of %d makes %d sections, more than %d", uidLimit, sectionSize, n, maxLayoutSections)
	}
	l := seqLayout{sectionSize: sectionSize, uidLimit: uidLimit, groupSize: groupSize, sections: int(n)}
	l.groups = (l.sections + groupSize - 1) / groupSize
	return l, nil
}

// sectionsIn returns the number of sections of group g.
func (l seqLayout) sectionsIn(g int) int { return min(l.groupSize, l.sections-g*l.groupSize) }

// groupKey returns the key of group g's max_seqs.
func groupKey(prefix string, g int) string { return fmt.Sprintf("%s/seq/groups/%08x", prefix, g) }

// parseGroupKey returns the group a key under <prefix>/seq/groups/ names.
func parseGroupKey(prefix, key string) (int, bool) {
	hex, ok := strings.CutPrefix(key, prefix+"/seq/groups/")
	if !ok || len(hex) != 8 {
		return 0, false
	}
	g, err := strconv.ParseUint(hex, 16, 31)
	return int(g), err == nil
}

// decodeMaxSeqs parses a group's value for a group of n sections.
func decodeMaxSeqs(b []byte, n int) ([]uint64, error) {
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("empty value")
	case b[0] != seqGroupFormat:
		return nil, fmt.Errorf("format %d, not the %d this mig knows", b[0], seqGroupFormat)
	case len(b) != 1+8*n:
		return nil, fmt.Errorf("%d bytes for a group of %d sections, want %d", len(b), n, 1+8*n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[1+8*i:])
	}
	return out, nil
}

// encodeMaxSeqs is decodeMaxSeqs' inverse.
func encodeMaxSeqs(m []uint64) []byte {
	b := []byte{seqGroupFormat}
	for _, v := range m {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// deployment is a deployment as etcd holds it, ready to print: as text by
// `mig status`, or as JSON by `mig status --json` (64-bit numbers as
// strings, since JavaScript readers lose integers above 2^53).
type deployment struct {
	Prefix string `json:"prefix"`
	// Now is the time the durations below are measured from: this host's
	// wall clock when it read etcd.
	Now      string       `json:"now"`
	Etcd     clusterRead  `json:"etcd"`
	SeqEtcd  *clusterRead `json:"seq_etcd,omitempty"` // nil: the sequences live in Etcd
	IDLayout *idLayout    `json:"id_layout"`          // nil: no worker has started
	// Datacenter is what <prefix>/cluster records: the datacenter this
	// cluster belongs to ("" when not recorded).
	Datacenter  string        `json:"datacenter,omitempty"`
	Datacenters []workerRange `json:"datacenters"`
	Workers     []workerSlot  `json:"workers"`
	Seq         seqView       `json:"sequences"`
	// Problems lists values that could not be read, by key. Status shows
	// the rest.
	Problems []string `json:"problems"`
}

type clusterRead struct {
	Endpoints []string `json:"endpoints"`
	Revision  int64    `json:"revision,string"`
}

type idLayout struct {
	Epoch      string `json:"epoch"`
	Tick       string `json:"tick"`
	TickBits   int    `json:"tick_bits"`
	WorkerBits int    `json:"worker_bits"`
	SeqBits    int    `json:"seq_bits"`
}

type workerRange struct {
	Datacenter string `json:"datacenter"`
	First      uint32 `json:"first"`
	Last       uint32 `json:"last"`
}

// workerSlot is one worker ID with a claim, a watermark or both.
type workerSlot struct {
	ID         int    `json:"id"`
	Held       bool   `json:"held"`
	Datacenter string `json:"datacenter,omitempty"`
	Holder     string `json:"holder,omitempty"`
	Lease      string `json:"lease,omitempty"` // hex, as etcdctl prints it
	// TTLLeft is the lease's remaining time to live in seconds as etcd
	// reports it; -1 once expired.
	TTLLeft *int64 `json:"ttl_left_seconds,omitempty"`
	// Watermark is the highest tick the worker ID may have issued, and
	// its time; Ahead is how far that is ahead of Now (negative: behind).
	WatermarkTick string   `json:"watermark_tick,omitempty"`
	WatermarkTime string   `json:"watermark_time,omitempty"`
	AheadSeconds  *float64 `json:"watermark_ahead_seconds,omitempty"`
}

type seqView struct {
	Config *seqConfig  `json:"config"` // nil: no sequence node has started
	MaxSeq *maxSeqView `json:"max_seq,omitempty"`
	Nodes  []seqNode   `json:"nodes"`
	// Arbiter is the node that writes the routing table; "" for none.
	Arbiter string       `json:"arbiter"`
	Routing *routingView `json:"routing"` // nil: no table written
}

type seqConfig struct {
	SectionSize uint64 `json:"section_size,string"`
	GroupSize   int    `json:"group_size"`
	UIDLimit    uint64 `json:"uid_limit,string"`
	Step        uint64 `json:"step,string"`
	Format      int    `json:"format"`
	Homes       string `json:"homes,omitempty"`
	Datacenter  string `json:"datacenter,omitempty"`
	Groups      int    `json:"groups"` // computed from the above
}

// maxSeqView sums up the persisted max_seqs.
type maxSeqView struct {
	GroupsWritten int    `json:"groups_written"`
	Highest       uint64 `json:"highest,string"`
	// HighestGroup and HighestSection locate Highest (the section within
	// the uid space); -1 when no group is written.
	HighestGroup   int `json:"highest_group"`
	HighestSection int `json:"highest_section"`
}

type seqNode struct {
	Name       string  `json:"name"`
	Registered bool    `json:"registered"`
	Address    string  `json:"address,omitempty"`
	Datacenter string  `json:"datacenter,omitempty"`
	Weight     float64 `json:"weight,omitempty"`
	Draining   bool    `json:"draining,omitempty"`
	Lease      string  `json:"lease,omitempty"`
	TTLLeft    *int64  `json:"ttl_left_seconds,omitempty"`
	// Load is the node's last load report, summed over its groups, in
	// calls a second; nil when it has not reported.
	Load *float64 `json:"load,omitempty"`
	// GroupsOwned is how many groups the routing table gives it.
	GroupsOwned int `json:"groups_owned"`
}

type routingView struct {
	Version uint64        `json:"version,string"`
	Groups  int           `json:"groups"`
	Owners  []routedOwner `json:"owners"`
}

// routedOwner is one owner's groups as runs ("0-111,200-210"); Owner ""
// holds the groups no live node serves.
type routedOwner struct {
	Owner   string `json:"owner"`
	Address string `json:"address,omitempty"`
	Groups  int    `json:"groups"`
	Ranges  string `json:"ranges"`
	// Registered is false for an owner whose registration is gone: its
	// groups move at the arbiter's next round.
	Registered bool `json:"registered"`
}

// readDeployment reads everything under the prefix from etc (and the
// sequences' keys from seq, when it is another cluster), then the
// remaining time of every lease involved. now is this host's wall clock.
func readDeployment(ctx context.Context, etc, seq *opsEtcd, prefix string, now time.Time) (*deployment, error) {
	d := &deployment{Prefix: prefix, Now: now.UTC().Format(timeFormat), Datacenters: []workerRange{}, Workers: []workerSlot{}, Problems: []string{}}
	d.Seq.Nodes = []seqNode{}
	resp, err := etc.get(ctx, prefix+"/", true)
	if err != nil {
		return nil, err
	}
	d.Etcd = clusterRead{Endpoints: etc.endpoints, Revision: resp.Header.Revision}
	kvs := resp.Kvs
	seqPrefix := prefix + "/seq/"
	if seq != nil {
		sresp, err := seq.get(ctx, seqPrefix, true)
		if err != nil {
			return nil, fmt.Errorf("--seq-etcd: %w", err)
		}
		d.SeqEtcd = &clusterRead{Endpoints: seq.endpoints, Revision: sresp.Header.Revision}
		kvs = slices.DeleteFunc(slices.Clone(kvs), func(kv *mvccKV) bool { return strings.HasPrefix(string(kv.Key), seqPrefix) })
		kvs = append(kvs, sresp.Kvs...)
	} else {
		seq = etc
	}

	workers := map[int]*workerSlot{}
	slot := func(id int) *workerSlot {
		if workers[id] == nil {
			workers[id] = &workerSlot{ID: id}
		}
		return workers[id]
	}
	workerLeases := map[int]int64{}
	nodes := map[string]*seqNode{}
	node := func(name string) *seqNode {
		if nodes[name] == nil {
			nodes[name] = &seqNode{Name: name}
		}
		return nodes[name]
	}
	nodeLeases := map[string]int64{}
	var routing []byte
	groups := map[int][]byte{}
	problem := func(key []byte, format string, args ...any) {
		d.Problems = append(d.Problems, string(key)+": "+fmt.Sprintf(format, args...))
	}
	unmarshal := func(kv *mvccKV, v any) bool {
		if err := json.Unmarshal(kv.Value, v); err != nil {
			problem(kv.Key, "unreadable (%v): %q", err, kv.Value)
			return false
		}
		return true
	}

	for _, kv := range kvs {
		rest := strings.TrimPrefix(string(kv.Key), prefix+"/")
		dir, name, _ := strings.Cut(rest, "/")
		switch {
		case rest == "layout":
			var r idLayoutRecord
			if unmarshal(kv, &r) {
				l := idLayout(r)
				d.IDLayout = &l
			}
		case rest == "cluster":
			var r clusterRecord
			if unmarshal(kv, &r) {
				d.Datacenter = r.Datacenter
			}
		case dir == "datacenters" && name != "":
			var r workerRangeRecord
			if unmarshal(kv, &r) {
				d.Datacenters = append(d.Datacenters, workerRange{Datacenter: name, First: r.First, Last: r.Last})
			}
		case dir == "workers" || dir == "watermarks":
			id, err := strconv.Atoi(name)
			if err != nil || id < 0 || id > 63 {
				problem(kv.Key, "not a worker ID key (workers/NN, watermarks/NN with NN in 0..63)")
				continue
			}
			if dir == "workers" {
				var r workerClaimRecord
				if unmarshal(kv, &r) {
					s := slot(id)
					s.Held, s.Datacenter, s.Holder = true, r.Datacenter, r.Holder
					s.Lease = leaseHex(kv.Lease)
					workerLeases[id] = kv.Lease
				}
				continue
			}
			var r workerWatermarkRecord
			if unmarshal(kv, &r) {
				s := slot(id)
				s.WatermarkTick, s.WatermarkTime = strconv.FormatInt(r.Tick, 10), r.Time
				if t, err := time.Parse(time.RFC3339Nano, r.Time); err == nil {
					ahead := t.Sub(now).Seconds()
					s.AheadSeconds = &ahead
					s.WatermarkTime = t.UTC().Format(timeFormat) // ticks are whole milliseconds
				} else {
					problem(kv.Key, "watermark time %q is not RFC 3339", r.Time)
				}
			}
		case rest == "seq/config":
			var r seqConfigRecord
			if unmarshal(kv, &r) {
				c := seqConfig{SectionSize: r.SectionSize, GroupSize: r.GroupSize, UIDLimit: r.UIDLimit, Step: r.Step, Format: r.Format, Homes: r.Homes, Datacenter: r.Datacenter}
				if l, err := newSeqLayout(r.SectionSize, r.UIDLimit, r.GroupSize); err == nil {
					c.Groups = l.groups
				} else {
					problem(kv.Key, "%v", err)
				}
				d.Seq.Config = &c
			}
		case strings.HasPrefix(rest, "seq/nodes/"):
			var r seqNodeRecord
			if unmarshal(kv, &r) {
				n := node(strings.TrimPrefix(rest, "seq/nodes/"))
				n.Registered, n.Address, n.Datacenter, n.Weight, n.Draining = true, r.Address, r.Datacenter, r.Weight, r.Draining
				n.Lease = leaseHex(kv.Lease)
				nodeLeases[n.Name] = kv.Lease
			}
		case strings.HasPrefix(rest, "seq/load/"):
			var r seqLoadRecord
			if unmarshal(kv, &r) {
				total := 0.0
				for _, v := range r.Groups {
					total += v
				}
				node(strings.TrimPrefix(rest, "seq/load/")).Load = &total
			}
		case rest == "seq/arbiter":
			d.Seq.Arbiter = string(kv.Value)
		case rest == "seq/routing":
			routing = kv.Value
		case strings.HasPrefix(rest, "seq/groups/"):
			g, ok := parseGroupKey(prefix, string(kv.Key))
			if !ok {
				problem(kv.Key, "not a group key (seq/groups/ and 8 hex digits)")
				continue
			}
			groups[g] = kv.Value
		}
	}

	if routing != nil {
		d.Seq.Routing = compactRouting(routing, nodes, func(format string, args ...any) {
			problem([]byte(seqPrefix+"routing"), format, args...)
		})
	}
	if c := d.Seq.Config; c != nil && c.Groups > 0 {
		lay, _ := newSeqLayout(c.SectionSize, c.UIDLimit, c.GroupSize)
		m := &maxSeqView{HighestGroup: -1, HighestSection: -1}
		for _, g := range slices.Sorted(maps.Keys(groups)) {
			key := []byte(groupKey(prefix, g))
			if g >= lay.groups {
				problem(key, "group %d is beyond the layout's %d groups", g, lay.groups)
				continue
			}
			vals, err := decodeMaxSeqs(groups[g], lay.sectionsIn(g))
			if err != nil {
				problem(key, "%v", err)
				continue
			}
			m.GroupsWritten++
			for i, v := range vals {
				if m.HighestGroup < 0 || v > m.Highest {
					m.Highest, m.HighestGroup, m.HighestSection = v, g, g*lay.groupSize+i
				}
			}
		}
		d.Seq.MaxSeq = m
	}

	// Lease lifetimes last: one call each, every one bounded.
	for id, l := range workerLeases {
		ttl, err := leaseTTL(ctx, etc, l)
		if err != nil {
			return nil, err
		}
		workers[id].TTLLeft = &ttl
	}
	for name, l := range nodeLeases {
		ttl, err := leaseTTL(ctx, seq, l)
		if err != nil {
			return nil, err
		}
		nodes[name].TTLLeft = &ttl
	}

	for _, id := range slices.Sorted(maps.Keys(workers)) {
		d.Workers = append(d.Workers, *workers[id])
	}
	for _, name := range slices.Sorted(maps.Keys(nodes)) {
		d.Seq.Nodes = append(d.Seq.Nodes, *nodes[name])
	}
	slices.SortFunc(d.Datacenters, func(a, b workerRange) int { return int(a.First) - int(b.First) })
	return d, nil
}

// compactRouting turns a routing table into runs of groups by owner, and
// counts each node's groups.
func compactRouting(val []byte, nodes map[string]*seqNode, problem func(string, ...any)) *routingView {
	var r routingRecord
	if err := json.Unmarshal(val, &r); err != nil {
		problem("unreadable (%v)", err)
		return nil
	}
	v := &routingView{Version: r.Version, Groups: r.Groups, Owners: []routedOwner{}}
	runs := map[string][][2]int{}
	count := map[string]int{}
	covered := 0
	for _, rg := range r.Ranges {
		if rg.Last < rg.First {
			problem("range %d-%d runs backwards", rg.First, rg.Last)
			continue
		}
		covered += rg.Last - rg.First + 1
		count[rg.Owner] += rg.Last - rg.First + 1
		rs := runs[rg.Owner]
		if n := len(rs); n > 0 && rs[n-1][1] == rg.First-1 {
			rs[n-1][1] = rg.Last
		} else {
			rs = append(rs, [2]int{rg.First, rg.Last})
		}
		runs[rg.Owner] = rs
	}
	if covered != r.Groups {
		problem("its ranges cover %d groups of %d", covered, r.Groups)
	}
	for _, owner := range slices.Sorted(maps.Keys(runs)) {
		parts := make([]string, len(runs[owner]))
		for i, rg := range runs[owner] {
			parts[i] = strconv.Itoa(rg[0])
			if rg[1] != rg[0] {
				parts[i] += "-" + strconv.Itoa(rg[1])
			}
		}
		o := routedOwner{Owner: owner, Address: r.Members[owner].Address, Groups: count[owner], Ranges: strings.Join(parts, ",")}
		if n := nodes[owner]; n != nil {
			o.Registered = n.Registered
			n.GroupsOwned = count[owner]
		}
		v.Owners = append(v.Owners, o)
	}
	return v
}

// leaseTTL returns the seconds lease has left, or -1 once it expired.
func leaseTTL(ctx context.Context, e *opsEtcd, lease int64) (int64, error) {
	var ttl int64
	err := e.call(ctx, "reading the time left of lease "+leaseHex(lease), func(ctx context.Context) error {
		r, err := e.cli.TimeToLive(ctx, clientv3.LeaseID(lease))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			ttl = -1 // expired since the keys were read
			return nil
		}
		if err != nil {
			return err
		}
		ttl = r.TTL
		return nil
	})
	return ttl, err
}

// leaseHex writes a lease ID as etcdctl does; "" for none.
func leaseHex(l int64) string {
	if l == 0 {
		return ""
	}
	return strconv.FormatInt(l, 16)
}
