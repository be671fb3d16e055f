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
	"github.com/wardgate/wardgate/diag/upload"
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

// uploadFlagHelp documents --upload, shared by every command that writes a bundle.
const uploadFlagHelp = "also upload the bundle to this blob store `URL`, as one object HOST/<bundle dir>.tar.gz (default $" + upload.Env + ";\ns3://bucket?endpoint=...&region=...&use_path_style=true, file:///dir; credentials from AWS_*). A failed upload\nkeeps the bundle on disk and exits 4"

// uploadDest resolves --upload (flag, else WARDGATE_UPLOAD) and checks it
// before any work is done.
func uploadDest(flagValue string) (string, error) {
	dest := upload.URL(flagValue)
	if dest == "" {
		return "", nil
	}
	if err := upload.Check(dest); err != nil {
		return "", fmt.Errorf("--upload / %s: %w", upload.Env, err)
	}
	return dest, nil
}

// uploadBundle uploads dir to dest and says so on w: the object key and
// the first lines of the bundle's report, or the error and where the
// bundle stays. It reports whether the upload worked.
func uploadBundle(ctx context.Context, cmd, dest, dir string, w io.Writer) bool {
	res, err := upload.Bundle(ctx, dest, dir)
	if err != nil {
		fmt.Fprintf(w, "%s: upload failed; the bundle stays in %s: %v\n", cmd, dir, err)
		return false
	}
	fmt.Fprintf(w, "%s: uploaded %s to %s key %s (%d bytes)\n", cmd, dir, res.URL, res.Key, res.Bytes)
	for _, l := range res.Head {
		fmt.Fprintf(w, "  %s\n", l)
	}
	return true
}
