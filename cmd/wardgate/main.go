// Command wardgate runs the wardgate stack (gateway, job queue) and the
// diagnostics that inspect it. main only wires flags and signals to the
// library packages; the work lives in gateway/, jobqueue/, telemetry/ and diag/.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
)

// command is one subcommand. run returns the process exit code: 0 success,
// 1 runtime failure, 2 bad usage or configuration.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"up":       {"run the whole stack: gateway in front of two supervised job queues", runUp},
		"gateway":  {"run the reverse proxy / load balancer from a YAML config", runGateway},
		"jobqueue": {"run the ingest service: bounded queue, worker pool, batched blob uploads", runJobqueue},
		"diag":     {"diagnostics: capture, analyze, profile, goroutines, watch, crash-setup", runDiag},
		"probe":    {"GET a URL and exit 0 on 2xx (container healthcheck)", runProbe},
		"version":  {"print version and build information", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `wardgate: an instrumented Go gateway + job-queue stack and the diagnostics to debug it.

Usage:
  wardgate <command> [flags]

Commands:
`)
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprint(w, `
Run "wardgate <command> --help" for the flags of a command.
Telemetry is configured with the standard OTEL_* environment variables (see docs/).
`)
}

func main() {
	if err := keepCrashOutput(); err != nil {
		fmt.Fprintln(os.Stderr, "wardgate:", err)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// keepCrashOutput makes the runtime copy a fatal error's traceback to the
// file named by WARDGATE_CRASH_OUTPUT (set by `wardgate up` for its
// children), so the post-mortem report can say why the process died even
// when stderr went nowhere.
func keepCrashOutput() error {
	path := os.Getenv("WARDGATE_CRASH_OUTPUT")
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("crash output: %w", err)
	}
	defer f.Close() // SetCrashOutput dups the descriptor
	if err := debug.SetCrashOutput(f, debug.CrashOptions{}); err != nil {
		return fmt.Errorf("crash output: %w", err)
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		usage(stdout)
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "wardgate: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd.run(ctx, args[1:], stdout, stderr)
}
