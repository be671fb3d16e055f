package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/wardgate/wardgate/diag/profile"
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

// Helpers shared by the diag subcommands (one file each: diag_<command>.go).

// appFlagHelp documents --app, shared by every diag command with findings.
const appFlagHelp = "import-path `PREFIX` of application code, which findings name (repeatable; default: the executable's main module;\npackage main always counts). Narrow it to one service of a monorepo, or widen it to your company's libraries"

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// labelFlags collects repeated --label k=v.
type labelFlags []profile.Label

func (l *labelFlags) String() string {
	var s []string
	for _, x := range *l {
		s = append(s, x.Key+"="+x.Value)
	}
	return strings.Join(s, ",")
}

func (l *labelFlags) Set(v string) error {
	x, err := profile.ParseLabel(v)
	if err != nil {
		return err
	}
	*l = append(*l, x)
	return nil
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments (`profile diff BASE NEW --top 5`), which the flag
// package alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func usageFunc(fs *flag.FlagSet, head, runbook string) func() {
	return func() {
		fmt.Fprint(fs.Output(), head)
		fmt.Fprint(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nRunbook: %s\n", runbook)
	}
}

func tokenDefault() string { return os.Getenv("ADMIN_TOKEN") }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
