package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/wardgate/wardgate/diag/triage"
	"github.com/wardgate/wardgate/diag/watch"
)

// Exit codes of `diag triage`, for scripts and alerting.
const (
	triageNothing  = 0
	triageFindings = 1
	triageUsage    = 2
)

// runDiagTriage is `wardgate diag triage`: the 3 a.m. command.
func runDiagTriage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate diag triage", flag.ContinueOnError)
	target := fs.String("target", "", "admin URL of the process, e.g. http://127.0.0.1:6060")
	pid := fs.Int("pid", 0, "pid of the process (its admin listener is found from its listening ports)")
	pidFile := fs.String("pid-file", "", "read the pid from `FILE` (under wardgate up: DATA/run/<service>/pid)")
	interval := fs.Duration("interval", 3*time.Second, "time between the two samples; the CPU profile covers it")
	core := fs.Bool("core", false, "also capture a core (wardgate diag capture, method auto) and add its analysis")
	out := fs.String("out", "", "bundle directory for everything saved (default ./wardgate-triage-<UTC time>)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	dump := fs.String("dump", triage.DumpAuto, "when to take the text goroutine dump (states, wait times, IDs): auto (both samples under 20k goroutines,\nthe second under 50k: it stops the process while it is written), always or never")
	uploadFlag := fs.String("upload", "", uploadFlagHelp)
	tokens := addAdminTokenFlags(fs)
	var app stringList
	fs.Var(&app, "app", appFlagHelp)
	fs.Usage = usageFunc(fs, `Usage: wardgate diag triage --target ADMIN_URL | --pid PID | --pid-file FILE
                           [--interval 3s] [--core] [--out DIR] [--json] [--app PREFIX]...

One command for "this process is stuck, slow, leaking or growing": takes the
goroutines (dump with states and wait times, and the profile with trace_id
labels), a heap profile right after a GC and /metrics, then a CPU profile for
--interval, then the same samples again, and prints one report:

  Findings   ranked, most suspicious first: deadlock, stuck-lock, leak,
             hung-io, stuck-queue, cpu, memory-growth (and crash, with --core
             on a crashing process), each naming the application function,
             file:line, the goroutines, how long, and trace IDs
  Groups     the goroutine groups the findings refer to
  Saved      every file, in a bundle directory (0700, files 0600)

Progress goes to stderr. TRACE_URL_TEMPLATE turns trace IDs into links.
--upload (or WARDGATE_UPLOAD) also uploads the bundle to a blob store.
Exit codes: 0 nothing found, 1 findings, 2 usage or target error, 4 the
bundle could not be uploaded (it stays on disk), 130 interrupted.
`, "docs/runbooks/triage.md")
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "wardgate diag triage: "+format+"\n", a...)
		return triageUsage
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	n := 0
	for _, set := range []bool{*target != "", *pid != 0, *pidFile != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return fail("give the process: --target ADMIN_URL, --pid PID or --pid-file FILE")
	case n > 1 && !(*target != "" && n == 2 && (*pid != 0 || *pidFile != "")):
		return fail("--pid and --pid-file are exclusive")
	case *interval < time.Second:
		return fail("--interval must be at least 1s")
	case *dump != triage.DumpAuto && *dump != triage.DumpAlways && *dump != triage.DumpNever:
		return fail("--dump %q: want auto, always or never", *dump)
	}
	dest, err := uploadDest(*uploadFlag)
	if err != nil {
		return fail("%v", err)
	}
	if *pidFile != "" {
		p, err := watch.ReadPIDFile(*pidFile)
		if err != nil {
			return fail("%v", err)
		}
		*pid = p
	}
	if *pid < 0 {
		return fail("--pid must be positive")
	}
	// With only a pid the admin listener is found on loopback.
	tokenTarget := *target
	if tokenTarget == "" {
		tokenTarget = "http://127.0.0.1"
	}
	token, err := tokens.resolve(tokenTarget, *pidFile)
	if err != nil {
		return fail("%v", err)
	}
	rep, err := triage.Run(ctx, triage.Options{
		Target: *target, PID: *pid, Token: token, Interval: *interval, Core: *core, OutDir: *out, Dump: *dump,
		App: app, TraceURLTemplate: os.Getenv("TRACE_URL_TEMPLATE"), Progress: stderr,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if code, ok := reportInterrupted(ctx, "wardgate diag triage", stderr); ok {
		return code
	}
	if err != nil {
		if errors.Is(err, triage.ErrTarget) {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "wardgate diag triage: %v\n", err)
		return triageUsage
	}
	if *asJSON {
		err = writeJSON(stdout, rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag triage: %v\n", err)
		return triageUsage
	}
	if dest != "" && rep.Bundle != "" && !uploadBundle(ctx, "wardgate diag triage", dest, rep.Bundle, stderr) {
		return exitUploadFailed
	}
	if len(rep.Findings) > 0 {
		return triageFindings
	}
	return triageNothing
}
