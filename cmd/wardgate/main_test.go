package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// wardgateBin is the wardgate binary the end-to-end tests run as real
// processes. TestMain builds it once; tests in this package share it. It is
// built without -race even under go test -race: a race-enabled process
// reserves terabytes of shadow memory, and the kernel then takes far too long
// to dump the cores the post-mortem tests provoke.
var wardgateBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wardgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	wardgateBin = filepath.Join(dir, "wardgate")
	out, err := exec.Command("go", "build", "-o", wardgateBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build wardgate: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
