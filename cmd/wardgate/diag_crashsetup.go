package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/wardgate/wardgate/diag/crashenv"
)

// runDiagCrashSetup is `wardgate diag crash-setup`.
func runDiagCrashSetup(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate diag crash-setup", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	dir := fs.String("dir", ".", "directory where the process to debug runs (a relative core_pattern puts cores there)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  wardgate diag crash-setup [--dir DIR] [--json]

Checks that a crashing Go process on this machine leaves a core that
'wardgate diag analyze' can read: kernel.core_pattern (a file, or a pipe to
systemd-coredump/apport), kernel.core_uses_pid, RLIMIT_CORE of this shell,
GOTRACEBACK, kernel.yama.ptrace_scope (live capture) and free disk space
where cores land. Prints OK or WARN per check with the command that fixes
it. Exit status 0 when everything is OK, 1 otherwise.

Flags:
`)
		fs.PrintDefaults()
	}
	var pos []string
	if code, ok := parseFlags(fs, stdout, stderr, func() (err error) { pos, err = analyzeParseArgs(fs, args); return err }); !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "wardgate diag crash-setup: unexpected argument %q (see --help)\n", pos[0])
		return 2
	}
	checks := crashenv.CheckCrashSetup(crashenv.SetupFromSystem(*dir))
	allOK := true
	for _, c := range checks {
		allOK = allOK && c.OK
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			OK     bool             `json:"ok"`
			Checks []crashenv.Check `json:"checks"`
		}{allOK, checks}); err != nil {
			fmt.Fprintln(stderr, "wardgate diag crash-setup:", err)
			return 1
		}
	} else {
		for _, c := range checks {
			status := "OK  "
			if !c.OK {
				status = "WARN"
			}
			fmt.Fprintf(stdout, "%s %-14s %s\n     %s\n", status, c.Name, c.Value, c.Detail)
			if c.Fix != "" {
				fmt.Fprintf(stdout, "     fix: %s\n", c.Fix)
			}
		}
	}
	if !allOK {
		return 1
	}
	return 0
}
