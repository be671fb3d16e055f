package testutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// WardgatePkg is the import path of the wardgate command. An import path
// builds from any package directory of the module, unlike ./cmd/wardgate.
const WardgatePkg = "github.com/wardgate/wardgate/cmd/wardgate"

// PrebuiltWardgateEnv names the variable with the path of a wardgate
// binary built from this checkout, for Build to reuse.
const PrebuiltWardgateEnv = "WARDGATE_TEST_BIN"

// Build runs `go build -o dir/name pkg` and returns the binary's path. pkg
// is an import path or a directory relative to the test's working
// directory (the package under test). The binary is built without -race
// even under `go test -race`: the tests measure the product, and a
// race-enabled child reserves terabytes of shadow memory, which makes the
// cores some tests provoke far too slow to dump. The compiler's output is
// in the error.
//
// For WardgatePkg, when $WARDGATE_TEST_BIN names a file (scripts/test.sh
// builds the binary once and sets it), that file is copied instead: five
// packages run wardgate, and linking it takes seconds of CPU each time.
func Build(ctx context.Context, dir, name, pkg string) (string, error) {
	bin := filepath.Join(dir, name)
	if prebuilt := os.Getenv(PrebuiltWardgateEnv); prebuilt != "" && pkg == WardgatePkg {
		if err := copyExecutable(prebuilt, bin); err != nil {
			return "", fmt.Errorf("$%s: %w", PrebuiltWardgateEnv, err)
		}
		return bin, nil
	}
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

// copyExecutable copies the file src to a new executable dst.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
