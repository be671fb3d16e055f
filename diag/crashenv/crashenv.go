// Package crashenv is everything about whether a crashing Go process
// leaves a usable core and traceback behind: the kernel's core_pattern
// (where cores land), RLIMIT_CORE (whether they are written and how big),
// the environment a child needs (GOTRACEBACK=crash, tracebacklabels, the
// crash output file) and CheckCrashSetup, which judges all of it for
// `wardgate diag crash-setup`. The `up` supervisor prepares its children
// with it; the checker explains the same settings, so the two cannot give
// different answers.
package crashenv

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
)

// OutputEnv names the file a child copies its fatal error's traceback to
// (runtime/debug.SetCrashOutput): `wardgate up` sets it, and the wardgate
// binary honours it at start.
const OutputEnv = "WARDGATE_CRASH_OUTPUT"

// ChildEnv returns env plus what every child needs to leave a useful
// crash: GOTRACEBACK=crash (all goroutines, then SIGABRT so the kernel
// dumps core), tracebacklabels=1 (pprof labels, hence trace IDs, in the
// traceback; a user's own GODEBUG settings come later and win) and
// OutputEnv=crashFile. env itself is not modified.
func ChildEnv(env []string, crashFile string) []string {
	godebug := "tracebacklabels=1"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok && v != "" {
			godebug = "tracebacklabels=1," + v
		}
	}
	return append(slices.Clip(env),
		"GOTRACEBACK=crash",
		"GODEBUG="+godebug,
		OutputEnv+"="+crashFile,
	)
}

// RaiseCoreLimit lifts this process's soft RLIMIT_CORE to its hard limit.
// Children inherit limits across fork/exec, so doing it once in the parent,
// before any child starts, is race-free (a prlimit on the child's pid after
// Start would leave a window where an early crash writes no core). It
// returns the resulting limit so the caller can warn when the hard limit
// itself forbids or truncates cores.
func RaiseCoreLimit() (syscall.Rlimit, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
		return lim, fmt.Errorf("getrlimit core: %w", err)
	}
	if lim.Cur != lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
			return lim, fmt.Errorf("setrlimit core: %w", err)
		}
	}
	return lim, nil
}

// RlimInfinity is RLIM_INFINITY as the uint64 the Rlimit fields hold.
const RlimInfinity = ^uint64(0)
