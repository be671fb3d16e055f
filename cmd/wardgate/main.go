// Command wardgate runs the wardgate stack (gateway, job queue) and the
// diagnostics that inspect it. main wires flags and signals to the library
// packages, where the work lives: gateway/, jobqueue/, supervisor/,
// telemetry/ and diag/ (docs/architecture.md has the import graph).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/wardgate/wardgate/diag/crashenv"
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

func topLevel() commandSet {
	return commandSet{
		name: "wardgate",
		header: `wardgate: an instrumented Go gateway + job-queue stack and the diagnostics to debug it.

Usage:
  wardgate <command> [flags]

Commands:
`,
		footer: `
Run "wardgate <command> --help" for the flags of a command.
Telemetry is configured with the standard OTEL_* environment variables (see docs/).
`,
		cmds: commands(),
	}
}

func main() {
	if err := keepCrashOutput(); err != nil {
		fmt.Fprintln(os.Stderr, "wardgate:", err)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// keepCrashOutput makes the runtime copy a fatal error's traceback to the
// file named by WARDGATE_CRASH_OUTPUT (crashenv.OutputEnv) (set by `wardgate up` for its
// children), so the post-mortem report can say why the process died even
// when stderr went nowhere.
func keepCrashOutput() error {
	path := os.Getenv(crashenv.OutputEnv)
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return topLevel().dispatch(ctx, args, stdout, stderr)
}
