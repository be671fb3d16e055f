package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// WardgatePkg is the import path of the wardgate command. An import path
// builds from any package directory of the module, unlike ./cmd/wardgate.
const WardgatePkg = "github.com/wardgate/wardgate/cmd/wardgate"

// Build runs `go build -o dir/name pkg` and returns the binary's path. pkg
// is an import path or a directory relative to the test's working
// directory (the package under test). The binary is built without -race
// even under `go test -race`: the tests measure the product, and a
// race-enabled child reserves terabytes of shadow memory, which makes the
// cores some tests provoke far too slow to dump. The compiler's output is
// in the error.
func Build(ctx context.Context, dir, name, pkg string) (string, error) {
	bin := filepath.Join(dir, name)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// BuildTemp builds pkg into a new temporary directory named after prefix,
// for a TestMain to share one binary among the package's tests. Call
// cleanup (it removes the directory) after m.Run; on error there is
// nothing to clean up.
func BuildTemp(prefix, name, pkg string) (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	bin, err = Build(context.Background(), dir, name, pkg)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// BuildT builds pkg into a temporary directory of t, failing t on error.
func BuildT(ctx context.Context, t testing.TB, name, pkg string) string {
	t.Helper()
	bin, err := Build(ctx, t.TempDir(), name, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// RunMain builds pkg as TestMain's shared binary, stores its path in *bin,
// runs the tests and removes the binary; it returns the exit code for
// os.Exit. A build failure is printed and fails the run.
func RunMain(m *testing.M, bin *string, prefix, name, pkg string) int {
	b, cleanup, err := BuildTemp(prefix, name, pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*bin = b
	return m.Run()
}
