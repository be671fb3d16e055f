package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/wardgate/wardgate/diag/capture"
	"github.com/wardgate/wardgate/diag/watch"
	"github.com/wardgate/wardgate/internal/bytesize"
)

// runDiagCapture is `wardgate diag capture`: one command for the 3 a.m.
// "grab a core of the stuck process without killing it".
func runDiagCapture(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate diag capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pid := fs.Int("pid", 0, "process to capture (this or --pid-file)")
	pidFile := fs.String("pid-file", "", "read the pid from `FILE` (under wardgate up: DATA/run/<service>/pid; in a pod: /proc/1/root/home/nonroot/wardgate/run/<service>/pid)")
	out := fs.String("out", "", "bundle directory to create (must not exist or be empty; default ./wardgate-capture-<pid>-<UTC time>)")
	method := fs.String("method", capture.MethodAuto, "auto, native or gcore: native stops the process only while copying its resident pages and writes a sparse core;\ngcore runs GDB's gcore (longer pause, core as big as the address space); auto tries native, then gcore")
	quiet := fs.Bool("quiet", false, "print only the bundle path")
	uploadFlag := fs.String("upload", "", uploadFlagHelp)
	precopy := fs.String("precopy", "on", "native only: on copies memory while the process runs and stops it only for pages written since\n(write tracking with userfaultfd, Linux 6.7+; falls back to off when unavailable); off stops it for the whole copy")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, `Usage: wardgate diag capture --pid PID | --pid-file FILE [--out DIR] [--method auto|native|gcore]

Writes a core dump of a live process into a bundle directory and lets the
process carry on. The bundle (mode 0700, files 0600) holds:
  core         ELF core, open it with: dlv core BUNDLE/exe BUNDLE/core
  exe          copy of the process's executable
  bundle.json  pid, cmdline, Go version/build info, method, pause, core size
  maps, status copies of /proc/PID/maps and /proc/PID/status
  environ      the environment, secret-looking values replaced by <redacted>
Then: wardgate diag analyze BUNDLE

With --upload (or WARDGATE_UPLOAD) the bundle is also uploaded to a blob
store, so it outlives the pod or machine (docs/runbooks/kubernetes.md).
Exit codes: 0 captured, 1 failed, 2 bad usage, 4 captured but not uploaded.

Needs permission to ptrace the process: the same user with
kernel.yama.ptrace_scope=0, or root / CAP_SYS_PTRACE. The core holds every
secret in the process's memory: keep the bundle private.

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprint(w, "\nRunbook: docs/runbooks/capture.md\n")
	}
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wardgate diag capture: unexpected argument %q (the pid goes in --pid)\n", fs.Arg(0))
		return 2
	}
	if *pidFile != "" {
		if *pid != 0 {
			fmt.Fprintln(stderr, "wardgate diag capture: --pid and --pid-file are exclusive")
			return 2
		}
		p, err := watch.ReadPIDFile(*pidFile)
		if err != nil {
			fmt.Fprintf(stderr, "wardgate diag capture: %v\n", err)
			return 2
		}
		*pid = p
	}
	if *pid <= 0 {
		fmt.Fprintln(stderr, "wardgate diag capture: --pid or --pid-file is required (a positive process id)")
		return 2
	}
	switch *method {
	case capture.MethodAuto, capture.MethodNative, capture.MethodGcore:
	default:
		fmt.Fprintf(stderr, "wardgate diag capture: --method %q: want auto, native or gcore\n", *method)
		return 2
	}

	dest, err := uploadDest(*uploadFlag)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag capture: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *precopy != "on" && *precopy != "off" {
		fmt.Fprintf(stderr, "wardgate diag capture: --precopy %q: want on or off\n", *precopy)
		return 2
	}
	b, err := capture.Capture(ctx, capture.Options{PID: *pid, OutDir: *out, Method: *method, Logger: logger, PreCopy: *precopy})
	if code, ok := reportInterrupted(ctx, "wardgate diag capture", stderr); ok && err != nil {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag capture: %v\n", err)
		return 1
	}
	code := 0
	if dest != "" && !uploadBundle(ctx, "wardgate diag capture", dest, b.Dir, stderr) {
		code = exitUploadFailed
	}
	if *quiet {
		fmt.Fprintln(stdout, b.Dir)
		return code
	}
	m := b.Meta
	fmt.Fprintln(stdout, b.Dir)
	fmt.Fprintf(stdout, "pid %d captured: method=%s pause=%.1fms threads=%d core=%s on disk (%s apparent)\n",
		m.PID, m.Method, m.PauseMS, m.Threads, bytesize.Format(m.CoreBytesOnDisk), bytesize.Format(m.CoreBytesApparent))
	if m.FallbackReason != "" {
		fmt.Fprintf(stdout, "note: native capture failed, used gcore: %s\n", m.FallbackReason)
	}
	if st, err := capture.ReadNativeStats(b.Dir); err == nil && m.Method == capture.MethodNative {
		fmt.Fprintf(stdout, "stops=%d longest=%.1fms pages copied live=%d paused=%d\n",
			st.Stops, st.LongestPauseMS, st.PagesCopiedLive, st.PagesCopiedPaused)
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "open it with: dlv core %s %s   or: wardgate diag analyze %s\n", b.Exe, b.Core, b.Dir)
	return code
}
