package testutil_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

func TestReadUpTable(t *testing.T) {
	out := "starting\nSERVICE   PID  PUBLIC                  METRICS\n" +
		"up        10   -                       http://127.0.0.1:9/metrics\n" +
		"gateway   11   http://127.0.0.1:8080   http://127.0.0.1:9090/metrics\n" +
		"\ndata: /tmp/x\n"
	sc := bufio.NewScanner(strings.NewReader(out))
	rows, err := testutil.ReadUpTable(sc)
	if err != nil {
		t.Fatal(err)
	}
	want := []testutil.UpRow{
		{Service: "up", PID: 10, Public: "-", Metrics: "http://127.0.0.1:9/metrics"},
		{Service: "gateway", PID: 11, Public: "http://127.0.0.1:8080", Metrics: "http://127.0.0.1:9090/metrics"},
	}
	if len(rows) != len(want) || rows[0] != want[0] || rows[1] != want[1] {
		t.Fatalf("rows = %+v, want %+v", rows, want)
	}
	if !sc.Scan() || sc.Text() != "data: /tmp/x" {
		t.Fatalf("the lines after the table must stay in the scanner, next is %q", sc.Text())
	}
	if _, err := testutil.ReadUpTable(bufio.NewScanner(strings.NewReader("SERVICE PID PUBLIC METRICS\nup x - m\n\n"))); err == nil {
		t.Fatal("a non-numeric pid must be an error")
	}
	if _, err := testutil.ReadUpTable(bufio.NewScanner(strings.NewReader("no table\n"))); err == nil {
		t.Fatal("output without a table must be an error")
	}
}

func TestParseListening(t *testing.T) {
	pub, adm, err := testutil.ParseListening("listening public=127.0.0.1:1 admin=127.0.0.1:2")
	if err != nil || pub != "http://127.0.0.1:1" || adm != "http://127.0.0.1:2" {
		t.Fatalf("got %q %q %v", pub, adm, err)
	}
	if _, _, err := testutil.ParseListening("panic: boom"); err == nil {
		t.Fatal("a line that is not a listening line must be an error")
	}
}

func TestDecompress(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("{\"a\":1}\n{\"a\":2}\n"))
	zw.Close()
	got, err := testutil.Decompress("x.ndjson.gz", gz.Bytes())
	if err != nil || string(got) != "{\"a\":1}\n{\"a\":2}\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, _ := testutil.Decompress("x.ndjson", []byte("plain\n")); string(got) != "plain\n" {
		t.Fatalf("an .ndjson object must come back unchanged, got %q", got)
	}
	if _, err := testutil.Decompress("x.gz", []byte("not gzip")); err == nil {
		t.Fatal("a corrupt .gz must be an error")
	}
}

func TestFreeAddrIsBindable(t *testing.T) {
	ln, err := net.Listen("tcp", testutil.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

// TestTerminate stops a real child with SIGTERM; a second Terminate on the
// reaped process reports the failed signal.
func TestTerminate(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := testutil.Terminate(cmd.Process, exited, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cmd.ProcessState.String(), "terminated") {
		t.Fatalf("child state %s, want terminated by SIGTERM", cmd.ProcessState)
	}
	if err := testutil.Terminate(cmd.Process, exited, time.Minute); err == nil {
		t.Fatal("terminating a reaped process must be an error")
	}
}

func TestEventually(t *testing.T) {
	n := 0
	testutil.Eventually(context.Background(), t, time.Minute, time.Millisecond, "third call", func() (bool, string) {
		n++
		return n >= 3, "not yet"
	})
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

func TestFreePortIsBindable(t *testing.T) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t))))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

// With $WARDGATE_TEST_BIN set (scripts/test.sh links wardgate once), Build
// copies that binary for WardgatePkg instead of linking its own.
func TestBuildReusesPrebuiltWardgate(t *testing.T) {
	src := filepath.Join(t.TempDir(), "prebuilt")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho prebuilt\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(testutil.PrebuiltWardgateEnv, src)
	bin, err := testutil.Build(context.Background(), t.TempDir(), "wardgate", testutil.WardgatePkg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin).Output()
	if err != nil || string(out) != "prebuilt\n" {
		t.Fatalf("%s: %q %v; want the prebuilt binary's copy", bin, out, err)
	}
	t.Setenv(testutil.PrebuiltWardgateEnv, filepath.Join(t.TempDir(), "missing"))
	if _, err := testutil.Build(context.Background(), t.TempDir(), "wardgate", testutil.WardgatePkg); err == nil || !strings.Contains(err.Error(), testutil.PrebuiltWardgateEnv) {
		t.Fatalf("a missing prebuilt binary: %v, want an error naming $%s", err, testutil.PrebuiltWardgateEnv)
	}
}
