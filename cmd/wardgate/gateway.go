package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/gateway"
	"github.com/wardgate/wardgate/internal/listen"
	"github.com/wardgate/wardgate/internal/logring"
	"github.com/wardgate/wardgate/telemetry"
)

const gatewayUsage = `Usage: wardgate gateway --config FILE [--listen ADDR] [--admin ADDR]

Runs the reverse proxy / load balancer described by a YAML config: routes by
longest path prefix to upstream pools, load balancing, health checks,
retries, middleware. Full reference: docs/gateway.md; sample config:
gateway/testdata/example.yaml.

The public listener serves only proxied routes. The admin listener (keep it
on loopback) serves /metrics, /debug/pprof/, /healthz and /admin/upstreams;
set admin_token in the file or ADMIN_TOKEN in the environment to require
"Authorization: Bearer TOKEN" there.

Signals: SIGHUP reloads the config (so does saving the file); SIGINT and
SIGTERM stop accepting, let in-flight requests finish (--shutdown-timeout)
and exit 0. An invalid config exits 2 with one line naming the field; on
reload it is refused with one log line and the old config keeps serving.

Logging: JSON lines on stderr, buffered (written every 200ms, when 256 KiB
are pending, and on exit); with --log-ring the buffer is a file that keeps
the last lines through a crash (wardgate up copies them into the
post-mortem as log-tail.txt).

Telemetry: the standard OTEL_* environment variables (traces are off unless
OTEL_TRACES_EXPORTER is set; Prometheus metrics are always on /metrics).

Flags:
`

func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path of the YAML config `FILE` (required); watched for changes")
	public := fs.String("listen", "", "public listen `ADDR` (host:port, or fd/N: an inherited listening socket), overrides `listen:` in the file")
	admin := fs.String("admin", "", "admin listen `ADDR` (host:port or fd/N), overrides `admin:` in the file")
	logLevel := fs.String("log-level", "info", "minimum log `LEVEL`: debug, info, warn or error")
	logRing := fs.String("log-ring", os.Getenv(logring.EnvPath), "`FILE` that holds the buffer of the log (a ring of its last 256 KiB, mapped MAP_SHARED) so the lines not yet written survive a crash; wardgate up sets it through "+logring.EnvPath+". Empty: the buffer is in memory only")
	shutdownTimeout := fs.Duration("shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish on SIGTERM/SIGINT")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), gatewayUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "wardgate gateway: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fs.Name(), "unexpected argument %q", fs.Arg(0))
	}
	if *configPath == "" {
		return usageError(stderr, fs.Name(), "--config FILE is required")
	}
	for name, v := range map[string]string{"--listen": *public, "--admin": *admin} {
		if v != "" {
			if err := listen.Check(v); err != nil {
				return fail("%s: %v", name, err)
			}
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fail("--log-level: want debug, info, warn or error, got %q", *logLevel)
	}
	if *shutdownTimeout <= 0 {
		return fail("--shutdown-timeout: must be > 0")
	}
	override := func(c *gateway.Config) {
		if *public != "" {
			c.Listen = *public
		}
		if *admin != "" {
			c.Admin = *admin
		}
	}
	cfg, err := gateway.LoadWith(*configPath, override)
	if err != nil {
		return fail("%s: %s", *configPath, strings.ReplaceAll(err.Error(), "\n", " "))
	}

	tel, err := telemetry.Setup(ctx, "wardgate-gateway")
	if err != nil {
		fmt.Fprintf(stderr, "wardgate gateway: %v\n", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	// The log (one access log line per request) is buffered: written out
	// every logring.DefaultInterval, when the buffer is full, and on exit,
	// instead of one write(2) per line.
	logOut, err := logring.New(stderr, logring.Options{Path: *logRing})
	if err != nil {
		return fail("--log-ring: %v", err)
	}
	defer logOut.Close()
	logger := telemetry.NewLogger(logOut, tel.Service, level)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending
				}
			}
		}
	}()

	g, err := gateway.New(ctx, cfg, tel, logger)
	if err != nil {
		return fail("%s: %v", *configPath, err)
	}
	err = g.Run(ctx, gateway.RunOptions{
		ConfigPath:      *configPath,
		Reload:          reload,
		Override:        override,
		ShutdownTimeout: *shutdownTimeout,
	})
	var le *gateway.ListenError
	if errors.As(err, &le) {
		// Nothing served yet: one line that says what to change (after
		// what was logged before it).
		_ = logOut.Flush()
		setting := fmt.Sprintf("--%s (or %s: in %s)", le.Field, le.Field, *configPath)
		fmt.Fprintf(stderr, "wardgate gateway: %v\n", &listenError{setting: setting, addr: le.Addr, err: le.Err})
		return 1
	}
	if err != nil {
		logger.Error("gateway stopped", "error", err.Error())
		return 1
	}
	logger.Info("gateway stopped")
	return 0
}
