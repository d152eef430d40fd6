package main

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
)

// runMig runs the mig command line args in-process, with stdin as standard
// input and env as the whole environment.
func runMig(t testing.TB, env map[string]string, stdin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	return runMigFrom(t, env, strings.NewReader(stdin), args...)
}

func runMigFrom(t testing.TB, env map[string]string, stdin io.Reader, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errOut bytes.Buffer
	p := &proc{stdin: stdin, stdout: &out, stderr: &errOut, lookupEnv: mapEnv(env)}
	status = dispatch(t.Context(), p, args)
	return out.String(), errOut.String(), status
}

// mapEnv returns a lookupFunc over env, a fake environment.
func mapEnv(env map[string]string) lookupFunc {
	return func(key string) (string, bool) {
		v, ok := env[key]
		return v, ok
	}
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		status     int
		stdout     []string // substrings of standard output
		stderr     []string // substrings of standard error
		noStdout   bool
		noStderr   bool
		sameAsHelp string // the output must equal `mig <sameAsHelp> --help`
	}{
		{name: "no args", args: nil, status: exitUsage, stderr: []string{"Usage: mig <command>", "decode"}, noStdout: true},
		{name: "help", args: []string{"help"}, status: exitOK, stdout: []string{"Usage: mig <command>", "decode"}, noStderr: true},
		{name: "--help", args: []string{"--help"}, status: exitOK, stdout: []string{"Usage: mig <command>", "decode"}, noStderr: true},
		{name: "-h", args: []string{"-h"}, status: exitOK, stdout: []string{"Usage: mig <command>"}, noStderr: true},
		{name: "help decode", args: []string{"help", "decode"}, status: exitOK, sameAsHelp: "decode", noStderr: true},
		{name: "help unknown", args: []string{"help", "nosuch"}, status: exitUsage, stderr: []string{`unknown command "nosuch"`}, noStdout: true},
		{name: "unknown", args: []string{"nosuch", "1"}, status: exitUsage, stderr: []string{`mig: unknown command "nosuch"`, "mig help"}, noStdout: true},
		{name: "flag before command", args: []string{"--json", "decode"}, status: exitUsage, stderr: []string{`unknown command "--json"`}, noStdout: true},
		{name: "unknown flag", args: []string{"decode", "--nosuch", "1"}, status: exitUsage, stderr: []string{"mig decode: ", "nosuch", "mig decode --help"}, noStdout: true},
		{name: "flag without value", args: []string{"decode", "--epoch"}, status: exitUsage, stderr: []string{"mig decode: ", "epoch"}, noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, status := runMig(t, nil, "", tt.args...)
			if status != tt.status {
				t.Errorf("status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, tt.status, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, stderr)
				}
			}
			if tt.noStdout && stdout != "" {
				t.Errorf("unexpected stdout:\n%s", stdout)
			}
			if tt.noStderr && stderr != "" {
				t.Errorf("unexpected stderr:\n%s", stderr)
			}
			if tt.sameAsHelp != "" {
				want, _, _ := runMig(t, nil, "", tt.sameAsHelp, "--help")
				if stdout != want {
					t.Errorf("stdout:\n%s\nwant the output of mig %s --help:\n%s", stdout, tt.sameAsHelp, want)
				}
			}
		})
	}
}

// TestUsageListsCommands checks that `mig help` lists every command of the
// table with its summary.
func TestUsageListsCommands(t *testing.T) {
	stdout, _, _ := runMig(t, nil, "", "help")
	for _, c := range commands() {
		listed := false
		for _, line := range strings.Split(stdout, "\n") {
			name, summary, _ := strings.Cut(strings.TrimSpace(line), " ")
			listed = listed || (name == c.name && strings.TrimSpace(summary) == c.summary)
		}
		if !listed {
			t.Errorf("mig help does not list %q with its summary:\n%s", c.name, stdout)
		}
	}
}

// TestHelpMentionsEveryFlag checks, for every command of the table, that
// --help lists each flag with its default and its environment variable.
func TestHelpMentionsEveryFlag(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			for _, helpFlag := range []string{"--help", "-h"} {
				stdout, stderr, status := runMig(t, nil, "", c.name, helpFlag)
				if status != exitOK || stderr != "" {
					t.Fatalf("mig %s %s: status %d, stderr %q", c.name, helpFlag, status, stderr)
				}
				if !strings.Contains(stdout, "Usage: mig "+c.name) {
					t.Errorf("no usage line:\n%s", stdout)
				}
				fs, _ := c.flagSet()
				fs.VisitAll(func(f *flag.Flag) {
					block := flagBlock(stdout, f.Name)
					want := []string{"environment: " + envVar(f.Name), "(default " + quotedDefault(f.DefValue) + ")"}
					switch {
					case f.Name == versionFlag:
						want = nil // no variable: MIG_VERSION must not mean --version
					case statesDefault(f.Usage):
						want = want[:1] // says its default in its own words
					}
					if block == "" {
						t.Errorf("help does not list --%s:\n%s", f.Name, stdout)
					}
					for _, s := range want {
						if !strings.Contains(block, s) {
							t.Errorf("help of --%s does not mention %q:\n%s", f.Name, s, block)
						}
					}
					// Defaults once: "(default: --listen ...) (default \"\")" said it twice.
					if n := strings.Count(block, "default"); n > 1 {
						t.Errorf("help of --%s says default %d times:\n%s", f.Name, n, block)
					}
				})
			}
		})
	}
}

func quotedDefault(def string) string {
	if def == "" || strings.ContainsAny(def, " \t") {
		return `"` + def + `"`
	}
	return def
}

// flagBlock returns the lines of help about flag name: its "  --name" line
// and the indented lines below it.
func flagBlock(help, name string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(line, "  --"):
			flagName, _, _ := strings.Cut(strings.TrimPrefix(line, "  --"), " ")
			in = flagName == name
		case !strings.HasPrefix(line, "    "):
			in = false
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
