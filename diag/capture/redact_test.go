package capture

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/diag/bundle"
)

// A real capture of a process started with secrets on its command line
// (both --flag value and --flag=value) and in its environment under names
// the old list missed (MYAPP_CREDS) or in values (a URL with a password,
// an AWS key ID): no file of the bundle but the core holds any of them.
func TestCaptureRedactsCmdlineAndEnviron(t *testing.T) {
	secrets := map[string]string{
		"flagSpace":  "t0k3n-flag-space",
		"flagEq":     "pw-flag-equals",
		"envName":    "alice-creds-value",
		"envURL":     "urlpassw0rd",
		"envAWS":     "AKIAIOSFODNN7EXAMPLE",
		"envEntropy": "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg",
	}
	t.Setenv("MYAPP_CREDS", secrets["envName"])
	t.Setenv("UPSTREAM_URL", "https://deploy:"+secrets["envURL"]+"@git.example.com/x")
	t.Setenv("SOME_ID", secrets["envAWS"])
	t.Setenv("OPAQUE", secrets["envEntropy"])
	// The target's flag parsing stops at "--"; the rest is its command
	// line all the same.
	tg := startTargetArgs(t, "-goroutines", "10", "-heap-mb", "1", "--",
		"--api-tokens", secrets["flagSpace"], "--db-pass="+secrets["flagEq"], "--listen", "127.0.0.1:0")
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: dir, Method: MethodAuto})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == bundle.CoreFile || e.Name() == bundle.ExeFile {
			continue // memory and the binary: secret by nature, mode 0600
		}
		data, err := os.ReadFile(filepath.Join(b.Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for what, s := range secrets {
			if strings.Contains(string(data), s) {
				t.Errorf("%s holds the secret %s (%s)", e.Name(), s, what)
			}
		}
	}
	read, err := bundle.Read(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := strings.Join(read.Meta.Cmdline, " ")
	if !strings.Contains(cmd, "--api-tokens <redacted>") || !strings.Contains(cmd, "--db-pass=<redacted>") || !strings.Contains(cmd, "--listen 127.0.0.1:0") {
		t.Errorf("bundle.json cmdline %q: want the secret flags redacted and the others kept", cmd)
	}
	env, err := os.ReadFile(filepath.Join(b.Dir, bundle.EnvironFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"MYAPP_CREDS=<redacted>", "UPSTREAM_URL=<redacted>", "SOME_ID=<redacted>", "OPAQUE=<redacted>", "PLAIN_SETTING=visible-value"} {
		if !strings.Contains(string(env), line+"\n") {
			t.Errorf("environ lacks the line %q", line)
		}
	}
}
