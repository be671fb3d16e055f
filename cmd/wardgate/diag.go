package main

import (
	"context"
	"fmt"
	"io"
	"sort"
)

func diagCommands() map[string]command {
	return map[string]command{
		"capture":     {"write a core + bundle of a live process (native low-pause or gcore)", runDiagCapture},
		"analyze":     {"post-mortem report (Markdown or JSON) from a bundle or a core, driven by delve", runDiagAnalyze},
		"profile":     {"capture a pprof profile from an admin URL and print its top; 'profile diff' compares two", runDiagProfile},
		"goroutines":  {"live goroutines of a process grouped by stack, with their pprof labels", runDiagGoroutines},
		"watch":       {"capture profiles (and optionally a core) when goroutines/heap/CPU cross a threshold", runDiagWatch},
		"crash-setup": {"check core_pattern, RLIMIT_CORE and GOTRACEBACK and say what to change", runDiagCrashSetup},
	}
}

func diagUsage(w io.Writer) {
	fmt.Fprint(w, "Usage:\n  wardgate diag <command> [flags]\n\nCommands:\n")
	cmds := diagCommands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprint(w, "\nRunbooks for each command: docs/runbooks/.\n")
}

func runDiag(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		diagUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		diagUsage(stdout)
		return 0
	}
	cmd, ok := diagCommands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "wardgate diag: unknown command %q\n\n", args[0])
		diagUsage(stderr)
		return 2
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}
