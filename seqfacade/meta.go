package seqfacade

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// configRecord is what the first node records at <prefix>/seq/config.
type configRecord struct {
	SectionSize uint64 `json:"section_size"`
	GroupSize   int    `json:"group_size"`
	UIDLimit    uint64 `json:"uid_limit"`
	Step        uint64 `json:"step"`
	Format      int    `json:"format"`
	// Homes is Config.Homes written out ("" for none).
	Homes string `json:"homes,omitempty"`
	// Datacenter is set for a datacenter's own store (Config.HomeOnly):
	// the datacenter it belongs to.
	Datacenter string `json:"datacenter,omitempty"`
}

func recordOf(c Config) configRecord {
	r := configRecord{SectionSize: c.SectionSize, GroupSize: c.GroupSize, UIDLimit: c.UIDLimit, Step: c.Step, Format: groupFormat, Homes: c.Homes.String()}
	if c.HomeOnly {
		r.Datacenter = c.Datacenter
	}
	return r
}

// diff lists the ways the recorded r and the configured c differ in what
// may not change. Step may.
func (r configRecord) diff(c configRecord) string {
	var d []string
	if r.SectionSize != c.SectionSize {
		d = append(d, fmt.Sprintf("section size %d recorded, %d configured", r.SectionSize, c.SectionSize))
	}
	if r.GroupSize != c.GroupSize {
		d = append(d, fmt.Sprintf("group size %d recorded, %d configured", r.GroupSize, c.GroupSize))
	}
	if r.UIDLimit != c.UIDLimit {
		d = append(d, fmt.Sprintf("uid limit %d recorded, %d configured", r.UIDLimit, c.UIDLimit))
	}
	if r.Format != c.Format {
		d = append(d, fmt.Sprintf("value format %d recorded, %d built in", r.Format, c.Format))
	}
	if r.Homes != c.Homes {
		d = append(d, fmt.Sprintf("homes %s recorded, %s configured", orNone(r.Homes), orNone(c.Homes)))
	}
	switch {
	case r.Datacenter == c.Datacenter:
	case r.Datacenter == "":
		d = append(d, fmt.Sprintf("the store is shared by every datacenter, but this node takes it for datacenter %s's own", c.Datacenter))
	case c.Datacenter == "":
		d = append(d, fmt.Sprintf("the store is datacenter %s's own, but this node takes it for one shared by every datacenter", r.Datacenter))
	default:
		d = append(d, fmt.Sprintf("the store is datacenter %s's own, and this node is of datacenter %s", r.Datacenter, c.Datacenter))
	}
	return strings.Join(d, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// checkMetadata records the configuration the first time and checks it
// every time after.
//
// HAZARD: a node with another section size (or group size, or uid limit)
// would read a uid's max_seq from another section's slot, or from none,
// and could start below values already handed out. A node that takes a
// datacenter's own store for a shared one (or another datacenter's), or
// that disagrees on the homes, could serve uids another store serves too:
// two counters for one uid. What no store can check is another
// datacenter's own store: two stores each recorded with homes that
// overlap the other's would both serve the overlap. Giving every
// datacenter the same --seq-homes is the operator's part (one store for
// every datacenter, --seq-etcd, has no such gap).
func checkMetadata(ctx context.Context, cli *clientv3.Client, cfg Config) error {
	key := cfg.Prefix + "/seq/config"
	want := recordOf(cfg)
	val, _ := json.Marshal(want)
	cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	tr, err := cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Else(clientv3.OpGet(key)).
		Commit()
	cancel()
	if err != nil {
		return fmt.Errorf("%w: etcd at %v: recording %s: %w", ErrUnavailable, cli.Endpoints(), key, err)
	}
	if tr.Succeeded {
		cfg.Logger.Info("seq facade: recorded configuration", "key", key, "config", string(val))
		return nil
	}
	kvs := tr.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return fmt.Errorf("%w: etcd at %v: %s vanished while being read", ErrUnavailable, cli.Endpoints(), key)
	}
	var got configRecord
	if err := json.Unmarshal(kvs[0].Value, &got); err != nil {
		return fmt.Errorf("%w: %s is unreadable (%v): %q", ErrMismatch, key, err, kvs[0].Value)
	}
	if d := got.diff(want); d != "" {
		return fmt.Errorf("%w: %s: %s (the cluster's recorded values win: start the node with them; deleting %s/seq/ to start afresh would send every uid's sequence back to 0: to change them safely, see 'mig seq-raise --help')",
			ErrMismatch, key, d, cfg.Prefix)
	}
	if got.Step != want.Step {
		// Safe: each extension adds the current step to what is persisted.
		// Best effort: a node that loses this race records nothing.
		cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		_, err := cli.Txn(cctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
			Then(clientv3.OpPut(key, string(val))).
			Commit()
		cancel()
		cfg.Logger.Info("seq facade: step changed", "recorded", got.Step, "configured", want.Step, "record_err", err)
	}
	return nil
}
