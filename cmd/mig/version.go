package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

var versionCommand = command{
	name:     "version",
	synopsis: "[--json]",
	summary:  "print mig's version, VCS revision and Go version",
	about: `
Version prints the module version mig was built as, the VCS revision and
commit time it was built from, and the Go version that built it, as the Go
toolchain recorded them in the binary. A value the build did not record is
printed as it is: "(devel)" for a version built from a checkout without a
tag, "unknown" for a revision (under 'go test', 'go run' of a file, or
'go build -buildvcs=false'). "+dirty" after the revision means the checkout
had uncommitted changes.

Every command also takes --version, and 'mig --version' is 'mig version'.
The same values are exported by 'mig serve' as the gauge
mig_build_info{version,revision,goversion} 1.`,
	flags: versionFlags,
}

func versionFlags(fs *flag.FlagSet) func(context.Context, *proc, []string) int {
	asJSON := fs.Bool("json", false, "print one JSON object with fields version, revision, time, go")
	return func(_ context.Context, p *proc, args []string) int {
		if len(args) > 0 {
			fmt.Fprintf(p.stderr, "mig version: unexpected argument %q: version takes no arguments\n", args[0])
			return exitUsage
		}
		printVersion(p.stdout, readBuild(), *asJSON)
		return exitOK
	}
}

// Values printed for what the build did not record.
const (
	develVersion = "(devel)"
	unknown      = "unknown"
)

// build is what the toolchain recorded about how mig was built.
type build struct {
	Version  string `json:"version"`  // module version, or develVersion
	Revision string `json:"revision"` // VCS revision, "+dirty" when modified; or unknown
	Time     string `json:"time"`     // the revision's commit time (RFC 3339), or unknown
	Go       string `json:"go"`       // the Go version that built the binary
}

// readBuild reads the build information of the running binary.
func readBuild() build {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return build{Version: develVersion, Revision: unknown, Time: unknown, Go: runtime.Version()}
	}
	return buildOf(info)
}

// buildOf extracts a build from info, filling in what is absent.
func buildOf(info *debug.BuildInfo) build {
	b := build{Version: info.Main.Version, Revision: unknown, Time: unknown, Go: info.GoVersion}
	if b.Version == "" {
		b.Version = develVersion // go test leaves the main module's version empty
	}
	if b.Go == "" {
		b.Go = runtime.Version()
	}
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				b.Revision = s.Value
			}
		case "vcs.time":
			if s.Value != "" {
				b.Time = s.Value
			}
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && b.Revision != unknown {
		b.Revision += "+dirty"
	}
	return b
}

// printVersion writes b as one line ("mig (devel) revision unknown ...")
// or as a JSON object.
func printVersion(w io.Writer, b build, asJSON bool) {
	if asJSON {
		out, _ := json.Marshal(b) // strings only: cannot fail
		fmt.Fprintf(w, "%s\n", out)
		return
	}
	var s strings.Builder
	fmt.Fprintf(&s, "mig %s\nrevision %s", b.Version, b.Revision)
	if b.Time != unknown {
		fmt.Fprintf(&s, " (%s)", b.Time)
	}
	fmt.Fprintf(&s, "\n%s\n", b.Go)
	io.WriteString(w, s.String())
}
