package testutil

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// CoresHere makes crashing children of the test binary leave a core named
// core(.PID) in their working directory: RLIMIT_CORE unlimited (inherited)
// and kernel.core_pattern "core" (a pipe to systemd-coredump or apport, or a
// fixed directory, would take them away). scripts/test.sh sets the pattern
// for the crash tests' window; run alone (as root), the test binary sets it
// itself and restore puts the old value back. It says so on stderr.
func CoresHere() (restore func(), err error) {
	lim := syscall.Rlimit{Cur: ^uint64(0), Max: ^uint64(0)}
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
		return nil, fmt.Errorf("raise RLIMIT_CORE: %w", err)
	}
	const patternFile = "/proc/sys/kernel/core_pattern"
	old, err := os.ReadFile(patternFile)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(old)) == "core" {
		return func() {}, nil
	}
	if err := os.WriteFile(patternFile, []byte("core"), 0o644); err != nil {
		return nil, fmt.Errorf("set core_pattern (the crash tests need root): %w", err)
	}
	fmt.Fprintf(os.Stderr, "kernel.core_pattern set to \"core\" for these tests, restored to %q after\n", strings.TrimSpace(string(old)))
	return func() { os.WriteFile(patternFile, old, 0o644) }, nil
}
