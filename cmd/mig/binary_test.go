package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/migsvc/mig/clock"
)

// buildMig builds the mig binary into a temporary directory and returns
// its path. With the race detector on it builds with -race as well, so
// that it reuses the packages the test binary was built from.
func buildMig(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build mig with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "mig")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool, append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// migProcess is `mig serve` running as a process of its own, with JSON
// logs on its standard error.
type migProcess struct {
	cmd    *exec.Cmd
	addr   chan string
	logs   *syncBuffer
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

// startProcess runs `bin serve args...` with an environment free of MIG_
// variables, and waits for its "serving" log line.
func startProcess(t testing.TB, bin string, args ...string) *migProcess {
	t.Helper()
	all := append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json"}, args...)
	p := &migProcess{cmd: exec.Command(bin, all...), addr: make(chan string, 1), logs: &syncBuffer{}, exited: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MIG_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var scanned sync.WaitGroup
	scanned.Go(func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.logs.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				p.addr <- line.Addr
			}
		}
	})
	go func() {
		scanned.Wait() // Wait closes the pipe: read it all first
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("logs of mig %q:\n%s", all, p.logs)
		}
	})
	select {
	case a := <-p.addr:
		p.addr <- a
		return p
	case <-p.exited:
		t.Fatalf("mig %q exited before serving: %v\n%s", all, p.err, p.logs)
	case <-clock.NewReal().After(60 * time.Second):
		t.Fatalf("mig %q not serving after 60s:\n%s", all, p.logs)
	}
	return nil
}

func (p *migProcess) address() string {
	a := <-p.addr
	p.addr <- a
	return a
}

// terminate sends SIGTERM and waits for the process to exit.
func (p *migProcess) terminate(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-clock.NewReal().After(30 * time.Second):
		t.Fatal("mig serve still running 30s after SIGTERM")
	}
	if p.err != nil {
		t.Errorf("mig serve after SIGTERM: %v, want exit status 0", p.err)
	}
}

// TestServeSIGTERM runs the mig binary with its embedded etcd, sends it
// SIGTERM while clients call it, and checks that it exits 0 having
// answered every request it took (the IDs it reports issued are exactly
// those the clients received); then runs it again on the same data
// directory and checks that it continues above every earlier ID.
func TestServeSIGTERM(t *testing.T) {
	t.Parallel()
	bin := buildMig(t)
	dataDir := t.TempDir()
	args := []string{"--data-dir", dataDir, "--workers", "3-3"}
	p := startProcess(t, bin, args...)
	ids, answers := loadUntilStopped(t, []string{p.address()}, 8, func() { p.terminate(t) })
	if got := issuedFromLogs(t, p.logs.String()); got != int64(len(ids)) {
		t.Errorf("mig serve issued %d IDs, the clients received %d", got, len(ids))
	}
	t.Logf("%d IDs in %d answers before SIGTERM", len(ids), answers)

	p2 := startProcess(t, bin, args...)
	checkAbove(t, p2.address(), ids)
	p2.terminate(t)
}
