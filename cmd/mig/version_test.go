package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersion: `mig version`, `mig --version` and --version on every
// command print the same thing; under go test the build records no
// version and no revision, which is said honestly.
func TestVersion(t *testing.T) {
	want, stderr, status := runMig(t, nil, "", "version")
	if status != exitOK || stderr != "" {
		t.Fatalf("mig version: status %d, stderr %q", status, stderr)
	}
	b := readBuild()
	if !strings.HasPrefix(want, "mig "+b.Version+"\nrevision "+b.Revision) || !strings.Contains(want, runtime.Version()) {
		t.Errorf("mig version printed:\n%s\nfor %+v", want, b)
	}
	if b.Version == "" || b.Revision == "" {
		t.Errorf("readBuild left a field empty: %+v", b)
	}
	runs := [][]string{{"--version"}, {"-version"}}
	for _, c := range commands() {
		runs = append(runs, []string{c.name, "--version"})
	}
	for _, args := range runs {
		// MIG_VERSION in the environment is not --version: only the
		// command line asks for it.
		got, stderr, status := runMig(t, map[string]string{"MIG_VERSION": "true"}, "", args...)
		if status != exitOK || stderr != "" || got != want {
			t.Errorf("mig %q: status %d, stderr %q, stdout:\n%s\nwant:\n%s", args, status, stderr, got, want)
		}
	}
	stdout, _, status := runMig(t, map[string]string{"MIG_VERSION": "true"}, "", "decode", "0")
	if status != exitOK || !strings.Contains(stdout, "2025-01-01T00:00:00.000Z") {
		t.Errorf("MIG_VERSION=true turned decode into version: status %d, %q", status, stdout)
	}

	stdout, _, status = runMig(t, nil, "", "version", "--json")
	var j build
	if err := json.Unmarshal([]byte(stdout), &j); status != exitOK || err != nil || j != b {
		t.Errorf("version --json: status %d, %q (%v), want %+v", status, stdout, err, b)
	}
	if _, stderr, status := runMig(t, nil, "", "version", "extra"); status != exitUsage || !strings.Contains(stderr, "unexpected argument") {
		t.Errorf("version extra: status %d, stderr %q", status, stderr)
	}
}

func TestBuildOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		info debug.BuildInfo
		want build
	}{
		{
			name: "go test: nothing recorded",
			info: debug.BuildInfo{GoVersion: "go1.26.0"},
			want: build{Version: develVersion, Revision: unknown, Time: unknown, Go: "go1.26.0"},
		},
		{
			name: "go build -buildvcs=false in a checkout",
			info: debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			want: build{Version: develVersion, Revision: unknown, Time: unknown, Go: "go1.26.0"},
		},
		{
			name: "go build in a modified checkout",
			info: debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20260101120000-0123456789ab+dirty"}, Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-01-01T12:00:00Z"}, {Key: "vcs.modified", Value: "true"},
			}},
			want: build{Version: "v0.0.0-20260101120000-0123456789ab+dirty", Revision: "0123456789abcdef+dirty", Time: "2026-01-01T12:00:00Z", Go: "go1.26.0"},
		},
		{
			name: "go install of a tag",
			info: debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "fedcba"}, {Key: "vcs.time", Value: "2026-02-01T00:00:00Z"}, {Key: "vcs.modified", Value: "false"},
			}},
			want: build{Version: "v1.2.3", Revision: "fedcba", Time: "2026-02-01T00:00:00Z", Go: "go1.26.0"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := buildOf(&tc.info); got != tc.want {
				t.Errorf("buildOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestLoggerDropsNil: an attribute whose value is nil, like an error that
// may be nil, is left out rather than logged as <nil>.
func TestLoggerDropsNil(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := newLogger(&buf, format, "info")
		var none error
		log.Info("stopped", "ids_issued", 3, "err", none)
		log.Warn("failed", "err", errors.New("boom"))
		out := buf.String()
		if strings.Contains(out, "nil") || !strings.Contains(out, "boom") || !strings.Contains(out, "ids_issued") {
			t.Errorf("%s logs:\n%s", format, out)
		}
	}
}
