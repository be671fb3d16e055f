package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goBuildIDOf is what `go tool buildid` says of bin: the reference the
// version line must match.
func goBuildIDOf(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command("go", "tool", "buildid", bin).Output()
	if err != nil {
		t.Fatalf("go tool buildid %s: %v", bin, err)
	}
	return strings.TrimSpace(string(out))
}

// `wardgate version` names the build however it was built: the shared test
// binary (VCS stamping depends on GOFLAGS and the checkout), a build with
// stamping off and no -X (only the build ID names it), and a release build
// with -X main.version and main.commit.
func TestVersionNamesTheBuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if out, err := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", plain, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	release := filepath.Join(dir, "release")
	if out, err := exec.CommandContext(ctx, "go", "build", "-buildvcs=false",
		"-ldflags", "-X main.version=v1.4.0-test -X main.commit=0123456789abcdef", "-o", release, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		bin  string
		want []string
	}{
		{wardgateBin, []string{"wardgate "}},
		{plain, []string{"wardgate (devel) (no revision) build "}},
		{release, []string{"wardgate v1.4.0-test (0123456789abcdef) build "}},
	} {
		stdout, stderr, code := runWardgate(t, dir, "version")
		if c.bin != wardgateBin {
			out, err := exec.CommandContext(ctx, c.bin, "version").Output()
			if err != nil {
				t.Fatalf("%s version: %v", c.bin, err)
			}
			stdout, stderr, code = string(out), "", 0
		}
		if code != 0 || stderr != "" || strings.Count(stdout, "\n") != 1 {
			t.Errorf("%s version: exit %d, stdout %q, stderr %q; want one line, exit 0", c.bin, code, stdout, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s version: %q lacks %q", c.bin, stdout, w)
			}
		}
		if id := goBuildIDOf(t, c.bin); !strings.Contains(stdout, " build "+id+" go1.") {
			t.Errorf("%s version: %q does not name its build ID %s", c.bin, stdout, id)
		}
		if strings.Contains(stdout, "unknown") {
			t.Errorf("%s version: %q", c.bin, stdout)
		}
	}
	if _, stderr, code := runWardgate(t, dir, "version", "extra"); code != 2 || !strings.Contains(stderr, "see 'wardgate version --help'") {
		t.Errorf("version extra: exit %d, stderr %q; want 2 and a pointer to the help", code, stderr)
	}
	if stdout, _, code := runWardgate(t, dir, "version", "--help"); code != 0 || !strings.Contains(stdout, "-X main.version") {
		t.Errorf("version --help: exit %d, stdout %q", code, stdout)
	}
}
