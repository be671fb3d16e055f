package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wardgate/wardgate/internal/listen"
	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
	"github.com/wardgate/wardgate/telemetry"
)

func jobqueueUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: wardgate jobqueue [flags]

Runs the ingest service: POST /v1/payloads admits collections of JSON
payloads into a bounded queue; a fixed pool of workers stores them as
NDJSON batches in the object store. SIGTERM/SIGINT: /readyz turns 503, new
posts get 503, the queue drains and every acked payload is stored before
exit 0, or, past DRAIN_TIMEOUT, spilled to SPILL_DIR and stored on the
next start. On start one line "listening public=ADDR admin=ADDR" is printed.

Every setting is an environment variable; the flag of the same name
overrides it.

`)
	for _, v := range jobqueue.Vars() {
		def := v.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s / %s (default %s)\n      %s\n", v.Flag(), v.Env, def, v.Help)
	}
	fmt.Fprint(w, `
  ADMIN_TOKEN (environment only)
      bearer token required on the admin listener; empty: none
  OTEL_* (environment only)
      standard OpenTelemetry variables; default: traces off, Prometheus metrics on the admin listener
`)
}

func runJobqueue(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate jobqueue", flag.ContinueOnError)
	flags := map[string]string{}
	for _, v := range jobqueue.Vars() {
		fs.Func(v.Flag(), v.Help, func(s string) error { flags[v.Env] = s; return nil })
	}
	fs.Usage = func() { jobqueueUsage(fs.Output()) }
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fs.Name(), "unexpected arguments %q (settings are flags or environment variables)", fs.Args())
	}
	get := func(name string) (string, bool) {
		if s, ok := flags[name]; ok {
			return s, true
		}
		return os.LookupEnv(name)
	}
	s, err := jobqueue.SettingsFrom(get)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", err)
		return 2
	}

	// Listen before opening the blob store: a taken port must fail before
	// anything is created on disk (a file:// store makes its directory).
	pubLn, err := listen.Listen(ctx, s.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", &listenError{setting: "--listen / LISTEN", addr: s.Listen, err: err})
		return 1
	}
	defer pubLn.Close() // normally closed by the server's Shutdown first
	admLn, err := listen.Listen(ctx, s.AdminListen)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", &listenError{setting: "--admin-listen / ADMIN_LISTEN", addr: s.AdminListen, err: err})
		return 1
	}
	defer admLn.Close()

	tel, err := telemetry.Setup(ctx, "wardgate-jobqueue")
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", err)
		return 2
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	log := telemetry.NewLogger(stderr, tel.Service, s.LogLevel)

	sink, err := blobsink.Open(ctx, s.BlobURL)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: BLOB_URL: %v\n", err)
		return 2
	}
	defer sink.Close()
	// In the background: a big blob directory takes a while to walk, and
	// the files it removes were never acknowledged.
	go func() {
		n, err := sink.RemoveStaleTemp(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("removing unfinished writes left by a killed process", "err", err)
		case n > 0:
			log.Info("removed unfinished writes left by a killed process (never acknowledged)", "files", n)
		}
	}()
	q, err := jobqueue.New(s.Config, sink, jobqueue.WithTelemetry(tel), jobqueue.WithLogger(log))
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", err)
		return 2
	}

	err = q.Run(ctx, jobqueue.RunOptions{
		Public:       pubLn,
		Admin:        admLn,
		AdminHandler: tel.AdminHandler(os.Getenv("ADMIN_TOKEN"), nil),
		DrainTimeout: s.DrainTimeout,
		Ready: func() {
			fmt.Fprintf(stdout, "listening public=%s admin=%s\n", pubLn.Addr(), admLn.Addr())
			log.Info("listening", "public", pubLn.Addr().String(), "admin", admLn.Addr().String(),
				"blob_url", sink.String(), "max_workers", s.Config.MaxWorkers, "max_queue", s.Config.MaxQueue,
				"ack_mode", string(s.Config.AckMode), "instance", s.Config.Instance, "spill_dir", s.Config.SpillDir,
				"drain_timeout", s.DrainTimeout.String(), "blob_put_timeout", s.Config.PutTimeout.String())
		},
	})
	if err != nil {
		return 1 // logged by Run, with what was not stored
	}
	return 0
}
