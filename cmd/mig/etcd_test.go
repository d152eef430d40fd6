package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeDataDirLogs: mig serve names its data directory by its absolute
// path, warns when it creates a new store, and opens the same store
// quietly on the next start.
func TestServeDataDirLogs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "mig-data") // absent: created
	s := startServe(t, append([]string{"--data-dir", dir}, fastFlags...)...)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	first := s.logs.String()
	warn := `"level":"WARN","msg":"creating a NEW embedded etcd store: every ID and sequence counter starts afresh.`
	if !strings.Contains(first, warn) || !strings.Contains(first, `"data_dir":"`+dir+`"`) || !strings.Contains(first, "every uid's sequence restarts from 0") {
		t.Errorf("first start on an absent --data-dir: no warning naming %s:\n%s", dir, first)
	}

	s = startServe(t, append([]string{"--data-dir", dir}, fastFlags...)...)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	again := s.logs.String()
	if strings.Contains(again, "NEW embedded etcd store") || !strings.Contains(again, `"msg":"opening the existing embedded etcd store","data_dir":"`+dir+`"`) {
		t.Errorf("second start on the same --data-dir:\n%s", again)
	}
}

func TestInspectDataDir(t *testing.T) {
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "empty")
	lockOnly := filepath.Join(tmp, "lock-only")
	store := filepath.Join(tmp, "store")
	notDir := filepath.Join(tmp, "not-dir")
	for _, d := range []string{empty, lockOnly, filepath.Join(store, "member", "wal"), notDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lockOnly, "etcdlocal.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notDir, "member"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir   string
		fresh bool
		err   string
	}{
		{filepath.Join(tmp, "absent"), true, ""},
		{empty, true, ""},
		{lockOnly, true, ""},
		{store, false, ""},
		{notDir, false, "is not a directory"},
	} {
		abs, fresh, err := inspectDataDir(tc.dir)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.dir, err, tc.err)
			}
		case err != nil || fresh != tc.fresh || abs != tc.dir:
			t.Errorf("%s: %s, fresh %v, %v; want fresh %v", tc.dir, abs, fresh, err, tc.fresh)
		}
	}
	// A relative path is logged as the absolute path it means here.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if abs, _, err := inspectDataDir("mig-data"); err != nil || abs != filepath.Join(wd, "mig-data") {
		t.Errorf("mig-data: %s, %v", abs, err)
	}
}
