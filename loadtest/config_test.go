package loadtest_test

import (
	"testing"
	"time"

	"github.com/migsvc/mig/loadtest"
)

func TestConfigValidate(t *testing.T) {
	seq := loadtest.ModeSeq
	tests := []struct {
		name  string
		cfg   loadtest.Config
		field string // "" for valid
	}{
		{"zero value", loadtest.Config{}, ""},
		{"full", loadtest.Config{Mode: seq, Clients: 200, Rate: 5000, Duration: time.Minute, Count: 1e6, Batch: 100,
			Dist: loadtest.Dist{Kind: loadtest.DistZipf, UIDs: 1e6, ZipfS: 1.5, ZipfV: 2}, Timeout: time.Second, Interval: 100 * ms}, ""},
		{"mode", loadtest.Config{Mode: 7}, "Mode"},
		{"negative clients", loadtest.Config{Clients: -1}, "Clients"},
		{"too many clients", loadtest.Config{Clients: loadtest.MaxClients + 1}, "Clients"},
		{"negative rate", loadtest.Config{Rate: -1}, "Rate"},
		{"rate too high", loadtest.Config{Rate: 1e9}, "Rate"},
		{"negative duration", loadtest.Config{Duration: -time.Second}, "Duration"},
		{"duration too long", loadtest.Config{Duration: 48 * time.Hour}, "Duration"},
		{"negative count", loadtest.Config{Count: -1}, "Count"},
		{"negative batch", loadtest.Config{Batch: -1}, "Batch"},
		{"ID batch too large", loadtest.Config{Batch: 100_001}, "Batch"},
		{"seq batch too large", loadtest.Config{Mode: seq, Batch: 20_000}, "Batch"},
		{"seq batch above the uids", loadtest.Config{Mode: seq, Batch: 11, Dist: loadtest.Dist{UIDs: 10}}, "Batch"},
		{"ID batch above the uids is fine", loadtest.Config{Batch: 11, Dist: loadtest.Dist{UIDs: 10}}, ""},
		{"timeout", loadtest.Config{Timeout: -1}, "Timeout"},
		{"interval too short", loadtest.Config{Interval: ms}, "Interval"},
		{"too many intervals", loadtest.Config{Duration: 24 * time.Hour, Interval: 10 * ms}, "Interval"},
		{"dist kind", loadtest.Config{Dist: loadtest.Dist{Kind: 9}}, "Dist.Kind"},
		{"hot calls", loadtest.Config{Dist: loadtest.Dist{HotCalls: 1.5}}, "Dist.HotCalls"},
		{"hot uids", loadtest.Config{Dist: loadtest.Dist{HotUIDs: -0.1}}, "Dist.HotUIDs"},
		{"zipf s", loadtest.Config{Dist: loadtest.Dist{ZipfS: 1}}, "Dist.ZipfS"},
		{"zipf v", loadtest.Config{Dist: loadtest.Dist{ZipfV: 0.5}}, "Dist.ZipfV"},
		{"uids", loadtest.Config{Dist: loadtest.Dist{UIDs: 1 << 41}}, "Dist.UIDs"},
		{"uids beyond the default uid space", loadtest.Config{Dist: loadtest.Dist{UIDs: 1 << 32}}, "Dist.UIDs"},
		{"uids beyond a uid space", loadtest.Config{Dist: loadtest.Dist{UIDs: 100, Space: 100}}, "Dist.UIDs"},
		{"uids filling a uid space", loadtest.Config{Dist: loadtest.Dist{UIDs: 100, Space: 101}}, ""},
		{"uid space with no uid", loadtest.Config{Dist: loadtest.Dist{Space: 1}}, "Dist.Space"},
		{"negative backoff", loadtest.Config{Backoff: -ms}, "Backoff"},
		{"backoff too long", loadtest.Config{Backoff: time.Hour}, "Backoff"},
		{"most backoff below the first", loadtest.Config{Backoff: 100 * ms, MaxBackoff: 50 * ms}, "MaxBackoff"},
		{"most backoff below the default first", loadtest.Config{MaxBackoff: 5 * ms}, "MaxBackoff"},
		{"first backoff above the default most", loadtest.Config{Backoff: 2 * time.Second}, ""},
		{"check", loadtest.Config{Check: loadtest.CheckConfig{Tolerance: -1}}, "Check.Tolerance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFieldErr(t, tt.cfg.Validate(), tt.field)
		})
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"ids", "seq"} {
		m, err := loadtest.ParseMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	for _, s := range []string{"uniform", "hot", "zipf"} {
		k, err := loadtest.ParseDistKind(s)
		if err != nil || k.String() != s {
			t.Errorf("ParseDistKind(%q) = %v, %v", s, k, err)
		}
	}
	if _, err := loadtest.ParseMode("id"); err == nil {
		t.Error("ParseMode accepts id")
	}
	if _, err := loadtest.ParseDistKind("normal"); err == nil {
		t.Error("ParseDistKind accepts normal")
	}
}
