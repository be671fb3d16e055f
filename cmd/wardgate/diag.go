package main

import (
	"context"
	"io"
)

func diagCommands() map[string]command {
	return map[string]command{
		"triage":      {"one report of a live process: findings first (deadlock, leak, hung I/O, hot code, growth), every sample saved", runDiagTriage},
		"capture":     {"write a core + bundle of a live process (native low-pause or gcore)", runDiagCapture},
		"analyze":     {"post-mortem report (Markdown or JSON) from a bundle or a core, driven by delve", runDiagAnalyze},
		"profile":     {"capture a pprof profile from an admin URL and print its top; 'profile diff' compares two", runDiagProfile},
		"goroutines":  {"live goroutines of a process grouped by stack, with their pprof labels", runDiagGoroutines},
		"watch":       {"capture profiles (and optionally a core) when goroutines/heap/CPU cross a threshold", runDiagWatch},
		"crash-setup": {"check core_pattern, RLIMIT_CORE and GOTRACEBACK and say what to change", runDiagCrashSetup},
	}
}

func runDiag(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return commandSet{
		name:   "wardgate diag",
		header: "Usage:\n  wardgate diag <command> [flags]\n\nCommands:\n",
		footer: "\nRunbooks for each command: docs/runbooks/.\n",
		cmds:   diagCommands(),
	}.dispatch(ctx, args, stdout, stderr)
}
