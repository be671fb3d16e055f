package analyze

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// runScript runs one delve Starlark script against the core through the
// real dlv binary, so user scripts have exactly the built-ins the dlv
// documentation describes: dlv core EXE CORE --init INIT, with an init file
// that sources the script and exits.
func runScript(ctx context.Context, opts Options, script string) (string, error) {
	abs, err := filepath.Abs(script)
	if err != nil {
		return "", fmt.Errorf("script %s: %w", script, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("script: %w", err)
	}
	dlv, err := findDlv(opts.DlvPath)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "wardgate-dlv-init-")
	if err != nil {
		return "", fmt.Errorf("script %s: %w", script, err)
	}
	defer os.RemoveAll(dir)
	init := filepath.Join(dir, "init")
	if err := os.WriteFile(init, []byte("source "+abs+"\nexit\n"), 0o600); err != nil {
		return "", fmt.Errorf("script %s: %w", script, err)
	}
	cmd := exec.CommandContext(ctx, dlv, "core", opts.Exe, opts.Core, "--init", init, "--allow-non-terminal-interactive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil // EOF: dlv exits even if the script leaves the prompt open
	runErr := cmd.Run()
	text := strings.TrimPrefix(out.String(), "Type 'help' for list of commands.\n")
	if runErr != nil {
		return text, fmt.Errorf("%s: %w", dlv, runErr)
	}
	// dlv reports a failing init command as "INIT:LINE: error" on its
	// output and carries on with exit status 0.
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, init+":") {
			return text, errors.New("the script failed: " + strings.TrimPrefix(l, init+":1: "))
		}
	}
	return text, nil
}

// findDlv returns the dlv binary: explicit, on PATH, or in $GOPATH/bin (where
// `go install` puts it; scripts/install-test-deps.sh does that).
func findDlv(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if p, err := exec.LookPath("dlv"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "dlv")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("dlv not found on PATH or in $GOPATH/bin: go install github.com/go-delve/delve/cmd/dlv@v1.27.2")
}
