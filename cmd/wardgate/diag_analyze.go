package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/wardgate/wardgate/diag/analyze"
)

// analyzeParseArgs parses flags that may come before or after positional
// arguments ("analyze BUNDLE --json" as well as "analyze --json BUNDLE").
func analyzeParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runDiagAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate diag analyze", flag.ContinueOnError)
	exe := fs.String("exe", "", "the executable that produced CORE (required with a core file; a bundle has its own copy)")
	asJSON := fs.Bool("json", false, "write the report as JSON instead of Markdown")
	var scripts stringList
	fs.Var(&scripts, "script", "a delve Starlark script (FILE.star) to run against the core with dlv; its output is appended (repeatable)")
	crashOut := fs.String("crash-output", "", "file with the fatal error text the process printed (default: the bundle's crash.txt)")
	out := fs.String("out", "", "write the report to this file instead of stdout")
	maxGroups := fs.Int("max-groups", 50, "at most this many goroutine groups in the report")
	dlv := fs.String("dlv", "", "the dlv binary for --script (default: dlv on PATH, then $GOPATH/bin/dlv)")
	var app stringList
	fs.Var(&app, "app", appFlagHelp)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  wardgate diag analyze BUNDLE_DIR [flags]
  wardgate diag analyze CORE --exe BIN [flags]

Post-mortem report of a Go core dump. It opens with Findings: what is wrong
(crash, deadlock, stuck lock, leak, hung I/O, stuck queue), ranked, each
naming the first application frame (function, file:line), the goroutines
and how long they waited; idle-by-design goroutines fold into one line.
Then the evidence: Go version and build, why it stopped
(signal, fatal error or panic), goroutines by state and grouped by identical
stack (count, wait reason, longest wait, pprof labels), the crashing
goroutine with source lines and locals, the wardgate job queue's depth,
capacity and busy workers, and links to the traces named by trace_id labels.

A BUNDLE_DIR (from 'wardgate diag capture' or a 'wardgate up' post-mortem)
holds core, exe, bundle.json and optionally crash.txt.
TRACE_URL_TEMPLATE (e.g. http://localhost:16686/trace/{trace_id}) turns
trace IDs into links. Shipped delve scripts: scripts/postmortem/*.star.

Flags:
`)
		fs.PrintDefaults()
	}
	var pos []string
	if code, ok := parseFlags(fs, stdout, stderr, func() (err error) { pos, err = analyzeParseArgs(fs, args); return err }); !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "wardgate diag analyze: want exactly one BUNDLE_DIR or CORE (see --help)")
		return 2
	}
	target := pos[0]
	st, err := os.Stat(target)
	if err != nil {
		fmt.Fprintln(stderr, "wardgate diag analyze:", err)
		return 2
	}
	var opts analyze.Options
	if st.IsDir() {
		opts, err = analyze.OptionsFromBundle(target)
		if err != nil {
			fmt.Fprintln(stderr, "wardgate diag analyze:", err)
			return 2
		}
		if *exe != "" {
			opts.Exe = *exe
		}
	} else {
		if *exe == "" {
			fmt.Fprintln(stderr, "wardgate diag analyze: a core file needs --exe BIN (the binary that crashed)")
			return 2
		}
		opts = analyze.Options{Core: target, Exe: *exe}
	}
	if *crashOut != "" {
		opts.CrashOutput = *crashOut
	}
	// A mistyped --script is a usage error, found before the (possibly
	// long) analysis rather than as a note at the end of the report.
	for _, s := range scripts {
		if _, err := os.Stat(s); err != nil {
			fmt.Fprintln(stderr, "wardgate diag analyze: --script:", err)
			return 2
		}
	}
	opts.Scripts = scripts
	opts.MaxGroups = *maxGroups
	opts.DlvPath = *dlv
	opts.TraceURLTemplate = os.Getenv("TRACE_URL_TEMPLATE")
	opts.App = app

	rep, err := analyze.Run(ctx, opts)
	if code, ok := reportInterrupted(ctx, "wardgate diag analyze", stderr); ok {
		return code
	}
	if err != nil {
		fmt.Fprintln(stderr, "wardgate diag analyze:", err)
		return 1
	}
	w := stdout
	var f *os.File
	if *out != "" {
		f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			fmt.Fprintln(stderr, "wardgate diag analyze:", err)
			return 1
		}
		w = f
	}
	if *asJSON {
		err = rep.WriteJSON(w)
	} else {
		err = rep.WriteMarkdown(w)
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "wardgate diag analyze:", err)
		return 1
	}
	return 0
}
