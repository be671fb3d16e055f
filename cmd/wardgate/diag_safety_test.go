package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

// captureIdleJobqueue captures a running `wardgate jobqueue` with `diag
// capture` (native) and returns the bundle directory.
func captureIdleJobqueue(t *testing.T) string {
	t.Helper()
	jq := analyzeStartJobqueue(t, "BLOB_URL=mem://")
	out := filepath.Join(t.TempDir(), "bundle")
	stdout, stderr, code := analyzeRun(t, "diag", "capture", "--pid", strconv.Itoa(jq.Cmd.Process.Pid), "--method", "native", "--out", out)
	if code != 0 {
		t.Fatalf("diag capture: exit %d\n%s%s", code, stdout, stderr)
	}
	return out
}

// The security review's case: a wardgate core analyzed with another Go
// binary as --exe used to grow to 15 GB and ignore SIGTERM. It must be
// refused in one line naming both files, quickly and in little memory.
func TestDiagAnalyzeRefusesAnotherExecutable(t *testing.T) {
	bundle := captureIdleJobqueue(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	other := testutil.BuildT(ctx, t, "crasher", "../../diag/analyze/testdata/crasher")
	core := filepath.Join(bundle, "core")

	for _, args := range [][]string{
		{"diag", "analyze", core, "--exe", other},
		{"diag", "analyze", bundle, "--exe", other, "--json"},
	} {
		cmd := exec.CommandContext(ctx, wardgateBin, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("%v: still running after 5 minutes (killed); stderr:\n%s", args, e.String())
		}
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Fatalf("%v: want exit 1, got %v; stdout:\n%s\nstderr:\n%s", args, err, o.String(), e.String())
		}
		msg := strings.TrimRight(e.String(), "\n")
		if strings.Contains(msg, "\n") {
			t.Errorf("%v: want one line on stderr, got:\n%s", args, msg)
		}
		for _, want := range []string{"does not match", core, other} {
			if !strings.Contains(msg, want) {
				t.Errorf("%v: stderr does not name %q:\n%s", args, want, msg)
			}
		}
		if o.Len() != 0 {
			t.Errorf("%v: a report was written for a mismatched pair:\n%s", args, o.String())
		}
		// ru_maxrss is in KiB on Linux. Opening the core and both ELF
		// files needs a few tens of MB; the old behaviour was gigabytes.
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > 256<<10 {
			t.Errorf("%v: peak RSS %d MiB refusing a mismatched executable, want < 256 MiB", args, ru.Maxrss>>10)
		}
	}

	// The matching executable is still accepted (the bundle's own copy).
	if _, stderr, code := analyzeRun(t, "diag", "analyze", core, "--exe", filepath.Join(bundle, "exe"), "--json"); code != 0 {
		t.Fatalf("analyze with the bundle's own exe: exit %d\n%s", code, stderr)
	}
}

// SIGTERM in the middle of an analysis (delve loading the core, which
// does not look at a context) stops it promptly, says so, and writes no
// report.
func TestDiagAnalyzeStopsOnSIGTERM(t *testing.T) {
	bundle := captureIdleJobqueue(t)
	core, err := filepath.Abs(filepath.Join(bundle, "core"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out := filepath.Join(t.TempDir(), "report.md")
			cmd := exec.CommandContext(ctx, wardgateBin, "diag", "analyze", bundle, "--out", out)
			var o, e testutil.SyncBuffer
			cmd.Stdout, cmd.Stderr = &o, &e
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Mid-analysis: delve holds the core open from loading it to
			// the end of the report.
			pid := cmd.Process.Pid
			deadline := time.Now().Add(2 * time.Minute)
			for !hasOpen(pid, core) {
				select {
				case err := <-exited:
					t.Fatalf("analyze exited (%v) before it was seen reading the core; stderr:\n%s", err, e.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("analyze never opened the core")
				}
				time.Sleep(2 * time.Millisecond)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			signalled := time.Now()
			var werr error
			select {
			case werr = <-exited:
			case <-time.After(60 * time.Second):
				t.Fatalf("analyze still running 60 s after %v", sig)
			}
			t.Logf("exited %v after %v", werr, time.Since(signalled))
			ee, ok := werr.(*exec.ExitError)
			if !ok || ee.ExitCode() != 130 {
				t.Fatalf("want exit 130 after %v, got %v; stderr:\n%s", sig, werr, e.String())
			}
			if !strings.Contains(e.String(), "interrupted") {
				t.Errorf("stderr does not say it was interrupted:\n%s", e.String())
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a report was written although the analysis was interrupted")
			}
		})
	}
}

// hasOpen reports whether process pid has path open.
func hasOpen(pid int, path string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, ent := range ents {
		if l, err := os.Readlink(filepath.Join(dir, ent.Name())); err == nil && l == path {
			return true
		}
	}
	return false
}

// A 2-minute CPU profile interrupted by SIGTERM (or Ctrl-C) ends at once
// with a clear line and exit 130, and leaves no profile file.
func TestDiagProfileStopsOnSIGTERM(t *testing.T) {
	jq := analyzeStartJobqueue(t, "BLOB_URL=mem://")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out := filepath.Join(t.TempDir(), "cpu.pb.gz")
			cmd := exec.CommandContext(ctx, wardgateBin, "diag", "profile", "--target", jq.Admin, "--type", "cpu", "--seconds", "120", "--out", out)
			var o, e testutil.SyncBuffer
			cmd.Stdout, cmd.Stderr = &o, &e
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Past flag parsing and signal setup: it has opened its
			// connection to the admin listener.
			deadline := time.Now().Add(2 * time.Minute)
			for !hasSocket(cmd.Process.Pid) {
				select {
				case err := <-exited:
					t.Fatalf("profile exited (%v) before connecting; stderr:\n%s", err, e.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("diag profile never connected")
				}
				time.Sleep(2 * time.Millisecond)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var werr error
			select {
			case werr = <-exited:
			case <-time.After(60 * time.Second):
				t.Fatalf("diag profile still running 60 s after %v", sig)
			}
			if ee, ok := werr.(*exec.ExitError); !ok || ee.ExitCode() != 130 || !strings.Contains(e.String(), "interrupted") {
				t.Fatalf("want exit 130 saying interrupted, got %v; stderr:\n%s", werr, e.String())
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a profile file was written although it was interrupted")
			}
		})
	}
}

// hasSocket reports whether process pid has a socket open.
func hasSocket(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, ent := range ents {
		if l, err := os.Readlink(filepath.Join(dir, ent.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			return true
		}
	}
	return false
}
