package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// wardgateBin is the wardgate binary the end-to-end tests run as real
// processes. TestMain builds it once (with -race when the tests run with
// -race, so children are checked too); tests in this package share it.
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
	args := []string{"build", "-o", wardgateBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build wardgate: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
