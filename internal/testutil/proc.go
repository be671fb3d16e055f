package testutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Terminate sends SIGTERM to p and waits up to grace for exited to close
// (the caller closes it once cmd.Wait returns). It returns an error if the
// signal cannot be sent (the process has already been reaped) or if p does
// not exit within grace; then p is killed and reaped before Terminate
// returns, so a test never leaks the child.
func Terminate(p *os.Process, exited <-chan struct{}, grace time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM pid %d: %w", p.Pid, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
		return fmt.Errorf("pid %d did not exit within %s of SIGTERM; killed it", p.Pid, grace)
	}
}

var listeningRE = regexp.MustCompile(`^listening public=(\S+) admin=(\S+)$`)

// ParseListening reads the first stdout line of `wardgate jobqueue`
// ("listening public=HOST:PORT admin=HOST:PORT") and returns both
// addresses as http:// base URLs.
func ParseListening(line string) (public, admin string, err error) {
	m := listeningRE.FindStringSubmatch(line)
	if m == nil {
		return "", "", fmt.Errorf("not a listening line: %q", line)
	}
	return "http://" + m[1], "http://" + m[2], nil
}

// UpRow is one row of the service table `wardgate up` prints once every
// service answers.
type UpRow struct {
	Service string
	PID     int
	Public  string // base URL
	Metrics string // full /metrics URL
}

// ReadUpTable scans `wardgate up`'s stdout up to the line that ends its
// first service table (SERVICE PID PUBLIC METRICS) and returns the rows.
// Lines after it are left in sc for the caller to drain.
func ReadUpTable(sc *bufio.Scanner) ([]UpRow, error) {
	var rows []UpRow
	inTable := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 4 && f[0] == "SERVICE":
			inTable, rows = true, nil
		case inTable && len(f) == 4:
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, fmt.Errorf("bad pid in %q", sc.Text())
			}
			rows = append(rows, UpRow{Service: f[0], PID: pid, Public: f[2], Metrics: f[3]})
		case inTable:
			return rows, nil
		}
	}
	return nil, fmt.Errorf("stdout ended before the table (read error: %v)", sc.Err())
}

// GoTool returns the path of an external tool the tests run for real
// (dlv, jaeger), from PATH or from $(go env GOPATH)/bin where
// scripts/install-test-deps.sh installs it; it fails t if it is in
// neither.
func GoTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Fatalf("go env GOPATH: %v", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not installed at %s: run scripts/install-test-deps.sh (%v)", name, p, err)
	}
	return p
}

// ReadPIDFile returns the pid in a pid file (a decimal pid and a newline,
// as wardgate up writes DATA/run/<service>/pid), 0 if there is no such
// file; any other content fails the test.
func ReadPIDFile(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	s, ok := strings.CutSuffix(string(b), "\n")
	pid, err := strconv.Atoi(s)
	if !ok || err != nil || pid <= 0 {
		t.Fatalf("pid file %s holds %q, want a decimal pid and a newline", path, b)
	}
	return pid
}
