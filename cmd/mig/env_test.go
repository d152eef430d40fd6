package main

import (
	"flag"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEnvVar(t *testing.T) {
	for flagName, want := range map[string]string{
		"json":          "MIG_JSON",
		"data-dir":      "MIG_DATA_DIR",
		"etcd":          "MIG_ETCD",
		"ntp.max-slew":  "MIG_NTP_MAX_SLEW",
		"worker-range2": "MIG_WORKER_RANGE2",
	} {
		if got := envVar(flagName); got != want {
			t.Errorf("envVar(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestSetFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // the flags after parsing, as formatted below
		wantErr []string
	}{
		{name: "defaults", want: "data-dir=mig-data n=1 fast=false ttl=5s"},
		{
			name: "environment",
			env:  map[string]string{"MIG_DATA_DIR": "/var/mig", "MIG_N": "7", "MIG_FAST": "true", "MIG_TTL": "1m"},
			want: "data-dir=/var/mig n=7 fast=true ttl=1m0s",
		},
		{
			name: "command line wins",
			args: []string{"--n=3", "--fast=false", "--data-dir", "/tmp/x"},
			env:  map[string]string{"MIG_DATA_DIR": "/var/mig", "MIG_N": "7", "MIG_FAST": "true"},
			want: "data-dir=/tmp/x n=3 fast=false ttl=5s",
		},
		{
			name: "command line wins over an invalid value",
			args: []string{"--n=3"},
			env:  map[string]string{"MIG_N": "many"},
			want: "data-dir=mig-data n=3 fast=false ttl=5s",
		},
		{
			name: "empty means unset",
			env:  map[string]string{"MIG_DATA_DIR": "", "MIG_N": "", "MIG_FAST": ""},
			want: "data-dir=mig-data n=1 fast=false ttl=5s",
		},
		{
			name: "other variables ignored",
			env:  map[string]string{"DATA_DIR": "/x", "MIG_data_dir": "/y", "N": "4"},
			want: "data-dir=mig-data n=1 fast=false ttl=5s",
		},
		{name: "invalid int", env: map[string]string{"MIG_N": "many"}, wantErr: []string{"MIG_N", `"many"`, "--n"}},
		{name: "invalid bool", env: map[string]string{"MIG_FAST": "yes please"}, wantErr: []string{"MIG_FAST", `"yes please"`, "--fast", "not true or false"}},
		{name: "invalid duration", env: map[string]string{"MIG_TTL": "5"}, wantErr: []string{"MIG_TTL", `"5"`, "--ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			dataDir := fs.String("data-dir", "mig-data", "where to keep data")
			n := fs.Int("n", 1, "how many")
			fast := fs.Bool("fast", false, "go fast")
			ttl := fs.Duration("ttl", 5*time.Second, "lease TTL")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := setFromEnv(fs, mapEnv(tt.env))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want one mentioning %q", tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := "data-dir=" + *dataDir + " n=" + strconv.Itoa(*n) + " fast=" + strconv.FormatBool(*fast) + " ttl=" + ttl.String()
			if got != tt.want {
				t.Errorf("got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestPrintFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.String("data-dir", "mig-data", "the `directory` for etcd's data")
	fs.String("etcd", "", "etcd endpoints")
	fs.Bool("json", false, "print JSON")
	var b strings.Builder
	printFlags(&b, fs)
	want := `  --data-dir directory
    	the directory for etcd's data (default mig-data)
    	environment: MIG_DATA_DIR
  --etcd string
    	etcd endpoints (default "")
    	environment: MIG_ETCD
  --json
    	print JSON (default false)
    	environment: MIG_JSON
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestDecodeEnvironment runs mig decode with flags from the environment.
func TestDecodeEnvironment(t *testing.T) {
	const id = "99921164441486546"
	const text = id + "    2026-11-21T07:47:35.120Z  tick=5955765512   worker=5  seq=1234\n"
	const jsonLine = `{"id":"99921164441486546","time":"2026-11-21T07:47:35.120Z","tick":5955765512,"worker":5,"seq":1234}` + "\n"
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		status int
		stdout string
		stderr []string
	}{
		{name: "none", stdout: text},
		{name: "MIG_JSON", env: map[string]string{"MIG_JSON": "true"}, stdout: jsonLine},
		{name: "MIG_JSON=1", env: map[string]string{"MIG_JSON": "1"}, stdout: jsonLine},
		{name: "--json=false wins", env: map[string]string{"MIG_JSON": "true"}, args: []string{"--json=false"}, stdout: text},
		{name: "MIG_EPOCH", env: map[string]string{"MIG_EPOCH": "2020-01-01T00:00:00Z"}, stdout: id + "    2021-11-20T07:47:35.120Z  tick=5955765512   worker=5  seq=1234\n"},
		{name: "--epoch wins", env: map[string]string{"MIG_EPOCH": "2020-01-01T00:00:00Z"}, args: []string{"--epoch", "2025-01-01T00:00:00Z"}, stdout: text},
		{name: "--epoch wins over a bad MIG_EPOCH", env: map[string]string{"MIG_EPOCH": "yesterday"}, args: []string{"--epoch", "2025-01-01T00:00:00Z"}, stdout: text},
		{name: "bad MIG_EPOCH", env: map[string]string{"MIG_EPOCH": "yesterday"}, status: exitUsage, stderr: []string{"mig decode: ", "MIG_EPOCH", `"yesterday"`, "--epoch"}},
		{name: "bad MIG_JSON", env: map[string]string{"MIG_JSON": "maybe"}, status: exitUsage, stderr: []string{"mig decode: ", "MIG_JSON", `"maybe"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"decode"}, tt.args...), id)
			stdout, stderr, status := runMig(t, tt.env, "", args...)
			if status != tt.status {
				t.Errorf("status %d, want %d; stderr:\n%s", status, tt.status, stderr)
			}
			if tt.status == exitOK && stdout != tt.stdout {
				t.Errorf("stdout:\n%q\nwant:\n%q", stdout, tt.stdout)
			}
			if tt.status != exitOK && stdout != "" {
				t.Errorf("stdout %q, want none", stdout)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, stderr)
				}
			}
			if tt.stderr == nil && stderr != "" {
				t.Errorf("unexpected stderr:\n%s", stderr)
			}
		})
	}
}
