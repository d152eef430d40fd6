package migclient_test

import (
	"os/exec"
	"strings"
	"testing"
)

// maxDeps bounds the packages outside the standard library that a program
// linking only this package links (this package included). It stood at
// 43 when the limit was set: protobuf's runtime is most of them.
const maxDeps = 60

// TestLightDependencies: an application that imports migclient links no
// server (rpc, seqfacade, workerid), no etcd, gRPC or Prometheus, and at
// most maxDeps packages outside the standard library.
func TestLightDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list dependencies with: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/migsvc/mig/rpc/migclient").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		allowed := map[string]bool{"github.com/migsvc/mig/rpc/migv1": true, "github.com/migsvc/mig/rpc/migclient": true, "github.com/migsvc/mig/seqfacade/route": true}
		for _, banned := range []string{"go.etcd.io/", "google.golang.org/grpc", "github.com/prometheus/", "go.uber.org/zap",
			"github.com/migsvc/mig/rpc", "github.com/migsvc/mig/seqfacade", "github.com/migsvc/mig/workerid", "github.com/migsvc/mig/internal/"} {
			if strings.HasPrefix(d, banned) && !allowed[d] {
				t.Errorf("migclient links %s", d)
			}
		}
	}
	if len(deps) > maxDeps {
		t.Errorf("migclient links %d packages outside the standard library, more than %d:\n%s", len(deps), maxDeps, strings.Join(deps, "\n"))
	}
	t.Logf("%d packages outside the standard library", len(deps))
}
