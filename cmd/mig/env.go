package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// lookupFunc returns the value of the environment variable key and whether
// it is set, as os.LookupEnv does. Tests pass a map's lookup instead.
type lookupFunc func(key string) (string, bool)

// envVar returns the environment variable that sets the flag called name:
// MIG_ and the name in capitals, dashes and dots as underscores
// (data-dir: MIG_DATA_DIR).
func envVar(name string) string {
	return "MIG_" + strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(name))
}

// setFromEnv sets every flag of fs that the command line did not set from
// its environment variable ([envVar]), found with lookup. Call it after
// fs.Parse: the command line wins over the environment. A variable that is
// unset or empty leaves the flag's default, so `MIG_EPOCH=` means "not
// configured". A value the flag refuses is an error naming the variable;
// flags are visited in name order and the first such error is returned.
func setFromEnv(fs *flag.FlagSet, lookup lookupFunc) error {
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || onCommandLine[f.Name] || f.Name == versionFlag {
			return
		}
		key := envVar(f.Name)
		v, ok := lookup(key)
		if !ok || v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				e = errors.New("not true or false") // the flag package says only "parse error"
			}
			err = fmt.Errorf("invalid value %q for --%s in environment variable %s: %v", v, f.Name, key, e)
		}
	})
	return err
}

// printFlags writes every flag of fs, in name order, with its argument, its
// usage, its default and its environment variable, like this (indented by
// two spaces, the lines below the name by a further tab):
//
//	--epoch RFC3339
//		the RFC3339 epoch the IDs were made with (default 2025-01-01T00:00:00Z)
//		environment: MIG_EPOCH
//
// A usage that says its default itself (it contains "default") gets no
// second "(default ...)"; --version gets neither a default nor a variable.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		usage = strings.ReplaceAll(usage, "\n", "\n    \t")
		if f.Name == versionFlag {
			fmt.Fprintf(w, "  --%s%s\n    \t%s\n", f.Name, arg, usage)
			return
		}
		if !statesDefault(usage) {
			usage += " (default " + quoteDefault(f.DefValue) + ")"
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s\n    \tenvironment: %s\n", f.Name, arg, usage, envVar(f.Name))
	})
}

// statesDefault reports whether a flag's usage says its default itself,
// like --seq-node's "(default: host name and --listen address)".
func statesDefault(usage string) bool { return strings.Contains(usage, "default") }

// quoteDefault returns a flag's default as help shows it: quoted when it
// is empty or has spaces.
func quoteDefault(def string) string {
	if def == "" || strings.ContainsAny(def, " \t") {
		return fmt.Sprintf("%q", def)
	}
	return def
}
