package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/internal/listen"
	"github.com/wardgate/wardgate/internal/ratelog"
	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
	"github.com/wardgate/wardgate/telemetry"
)

// jobqueueVar is one setting of `wardgate jobqueue`: an environment
// variable (12-factor, names from the design notes) and a flag that
// overrides it.
type jobqueueVar struct {
	env, def, help string
}

func (v jobqueueVar) flagName() string {
	return strings.ReplaceAll(strings.ToLower(v.env), "_", "-")
}

func jobqueueVars() []jobqueueVar {
	d := jobqueue.DefaultConfig()
	return []jobqueueVar{
		{"LISTEN", "127.0.0.1:9001", "public address (POST /v1/payloads, /healthz, /readyz): host:port (port 0 picks a free one) or fd/N, an inherited listening socket"},
		{"ADMIN_LISTEN", "127.0.0.1:0", "admin address (/metrics, /debug/pprof/, /healthz), host:port or fd/N; keep it on loopback"},
		{"MAX_WORKERS", strconv.Itoa(d.MaxWorkers), "worker goroutines (default: 2 x GOMAXPROCS, at least 4)"},
		{"MAX_QUEUE", strconv.Itoa(d.MaxQueue), "payloads acked and not yet stored, at most (the memory bound)"},
		{"MAX_LENGTH", "1MiB", "request body size limit (bytes, or with KiB/MiB/GiB)"},
		{"BLOB_URL", "file://./data/blobs", "object store: file:///dir, file://./dir, mem://, s3://bucket?endpoint=URL&region=R&use_path_style=true"},
		{"BATCH_MAX_PAYLOADS", strconv.Itoa(d.BatchMaxPayloads), "payloads per stored object, at most"},
		{"BATCH_MAX_BYTES", strconv.Itoa(d.BatchMaxBytes>>20) + "MiB", "flush a batch once its uncompressed NDJSON reaches this size"},
		{"BATCH_MAX_WAIT", d.BatchMaxWait.String(), "flush a batch this long after its first payload at the latest (durable mode flushes as soon as no request is waiting to be queued)"},
		{"ACK_MODE", string(d.AckMode), "when to answer 202: enqueued (queued) or durable (stored)"},
		{"API_TOKENS", "", "comma-separated tokens accepted in the collection's \"token\" field or an Authorization: Bearer header; empty disables auth"},
		{"COMPRESSION", string(d.Compression), "object compression: gzip (.ndjson.gz) or none (.ndjson)"},
		{"INSTANCE", "<hostname>-<pid>", "name of this process in object keys"},
		{"DRAIN_TIMEOUT", defaultDrainTimeout.String(), "on SIGTERM, stop retrying uploads after this long and spill what is not stored to SPILL_DIR (Kubernetes allows 30s; 0: wait forever)"},
		{"SPILL_DIR", "./data/spill", "local directory for acked payloads not stored by the drain deadline (fsync'd, uploaded on the next start); \"off\" disables (they are then lost)"},
		{"BLOB_PUT_TIMEOUT", d.PutTimeout.String(), "deadline of one blob PUT attempt (then counted, logged and retried)"},
		{"ACK_TIMEOUT", d.AckTimeout.String(), "durable mode: answer 503 + Retry-After if the payloads are not stored within this (they still are, later)"},
		{"LOG_LEVEL", "info", "debug, info, warn or error"},
	}
}

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
	for _, v := range jobqueueVars() {
		def := v.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s / %s (default %s)\n      %s\n", v.flagName(), v.env, def, v.help)
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
	for _, v := range jobqueueVars() {
		fs.Func(v.flagName(), v.help, func(s string) error { flags[v.env] = s; return nil })
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
	s, err := jobqueueSettingsFrom(get)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", err)
		return 2
	}

	// Listen before opening the blob store: a taken port must fail before
	// anything is created on disk (a file:// store makes its directory).
	pubLn, err := listen.Listen(ctx, s.listen)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", &listenError{setting: "--listen / LISTEN", addr: s.listen, err: err})
		return 1
	}
	defer pubLn.Close() // normally closed by the server's Shutdown first
	admLn, err := listen.Listen(ctx, s.adminListen)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", &listenError{setting: "--admin-listen / ADMIN_LISTEN", addr: s.adminListen, err: err})
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
	log := telemetry.NewLogger(stderr, tel.Service, s.logLevel)

	sink, err := blobsink.Open(ctx, s.blobURL)
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
	q, err := jobqueue.New(s.cfg, sink, jobqueue.WithTelemetry(tel), jobqueue.WithLogger(log))
	if err != nil {
		fmt.Fprintf(stderr, "wardgate jobqueue: %v\n", err)
		return 2
	}

	// Workers are not tied to ctx: the signal starts a drain, not a hard stop.
	q.Start(context.WithoutCancel(ctx))
	// net/http writes some errors to ErrorLog once per connection or
	// request: summarized, never a flood.
	srvLog := ratelog.NewHandler(log.Handler(), ratelog.Options{})
	defer srvLog.Flush()
	pub := &http.Server{
		Handler:           q.Handle(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(srvLog, slog.LevelWarn),
	}
	adm := &http.Server{
		Handler:           tel.AdminHandler(os.Getenv("ADMIN_TOKEN"), nil),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- pub.Serve(pubLn) }()
	go func() { serveErr <- adm.Serve(admLn) }()
	fmt.Fprintf(stdout, "listening public=%s admin=%s\n", pubLn.Addr(), admLn.Addr())
	log.Info("listening", "public", pubLn.Addr().String(), "admin", admLn.Addr().String(),
		"blob_url", sink.String(), "max_workers", s.cfg.MaxWorkers, "max_queue", s.cfg.MaxQueue,
		"ack_mode", string(s.cfg.AckMode), "instance", s.cfg.Instance, "spill_dir", s.cfg.SpillDir,
		"drain_timeout", s.drainTimeout.String(), "blob_put_timeout", s.cfg.PutTimeout.String())

	code := 0
	select {
	case <-ctx.Done():
		log.Info("signal: draining (readyz 503, new posts 503)")
	case err := <-serveErr:
		log.Error("listener failed; draining", "err", err)
		code = 1
	}
	dctx := context.Background()
	if s.drainTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(dctx, s.drainTimeout)
		defer cancel()
	}
	// Drain first: the public listener stays up meanwhile so clients get a
	// clear 503 and durable-mode requests get their 202 once stored.
	switch err := q.Drain(dctx); {
	case errors.Is(err, jobqueue.ErrSpilled):
		log.Warn("drain deadline passed: every acked payload is stored or spilled to SPILL_DIR", "err", err)
	case err != nil:
		log.Error("drain incomplete", "err", err)
		code = 1
	default:
		log.Info("drained: every acked payload is stored")
	}
	// Every request has its answer by now (durable ones included): only
	// idle connections are left, so this is quick; bounded all the same.
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = pub.Shutdown(sctx)
	_ = adm.Shutdown(sctx)
	return code
}

// defaultDrainTimeout bounds a drain by default: Kubernetes sends SIGKILL
// 30s after SIGTERM, and what is not stored by then is spilled to disk,
// which needs the remaining seconds.
const defaultDrainTimeout = 25 * time.Second

// jobqueueSettings is the parsed configuration of the command.
type jobqueueSettings struct {
	cfg          jobqueue.Config
	listen       string
	adminListen  string
	blobURL      string
	drainTimeout time.Duration
	logLevel     slog.Level
}

// jobqueueSettingsFrom resolves every variable through get (flag, then
// environment) and reports the first bad one by name.
func jobqueueSettingsFrom(get func(string) (string, bool)) (jobqueueSettings, error) {
	s := jobqueueSettings{cfg: jobqueue.DefaultConfig()}
	val := func(name, def string) string {
		if v, ok := get(name); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	posInt := func(name string, def int) (int, error) {
		raw := val(name, strconv.Itoa(def))
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%s: %q is not a positive integer", name, raw)
		}
		return n, nil
	}
	size := func(name string, def int64) (int64, error) {
		raw := val(name, strconv.FormatInt(def, 10))
		n, err := parseByteSize(raw)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return n, nil
	}
	dur := func(name string, def time.Duration, allowZero bool) (time.Duration, error) {
		raw := val(name, def.String())
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 || (d == 0 && !allowZero) {
			return 0, fmt.Errorf("%s: %q is not a positive duration (e.g. 500ms, 2s)", name, raw)
		}
		return d, nil
	}
	var err error
	c := &s.cfg
	s.listen = val("LISTEN", "127.0.0.1:9001")
	if err := listen.Check(s.listen); err != nil {
		return s, fmt.Errorf("LISTEN: %w", err)
	}
	s.adminListen = val("ADMIN_LISTEN", "127.0.0.1:0")
	if err := listen.Check(s.adminListen); err != nil {
		return s, fmt.Errorf("ADMIN_LISTEN: %w", err)
	}
	if c.MaxWorkers, err = posInt("MAX_WORKERS", c.MaxWorkers); err != nil {
		return s, err
	}
	if c.MaxQueue, err = posInt("MAX_QUEUE", c.MaxQueue); err != nil {
		return s, err
	}
	if c.MaxLength, err = size("MAX_LENGTH", c.MaxLength); err != nil {
		return s, err
	}
	s.blobURL = val("BLOB_URL", "file://./data/blobs")
	if c.BatchMaxPayloads, err = posInt("BATCH_MAX_PAYLOADS", c.BatchMaxPayloads); err != nil {
		return s, err
	}
	bmb, err := size("BATCH_MAX_BYTES", int64(c.BatchMaxBytes))
	if err != nil {
		return s, err
	}
	c.BatchMaxBytes = int(bmb)
	if c.BatchMaxWait, err = dur("BATCH_MAX_WAIT", c.BatchMaxWait, false); err != nil {
		return s, err
	}
	c.AckMode = jobqueue.AckMode(strings.ToLower(val("ACK_MODE", string(c.AckMode))))
	c.Compression = jobqueue.Compression(strings.ToLower(val("COMPRESSION", string(c.Compression))))
	c.APITokens = nil
	if raw := val("API_TOKENS", ""); raw != "" {
		for _, t := range strings.Split(raw, ",") {
			c.APITokens = append(c.APITokens, strings.TrimSpace(t))
		}
	}
	c.Instance = val("INSTANCE", c.Instance)
	if s.drainTimeout, err = dur("DRAIN_TIMEOUT", defaultDrainTimeout, true); err != nil {
		return s, err
	}
	if c.PutTimeout, err = dur("BLOB_PUT_TIMEOUT", c.PutTimeout, false); err != nil {
		return s, err
	}
	if c.AckTimeout, err = dur("ACK_TIMEOUT", c.AckTimeout, false); err != nil {
		return s, err
	}
	if c.SpillDir = val("SPILL_DIR", "./data/spill"); strings.EqualFold(c.SpillDir, "off") {
		c.SpillDir = ""
	}
	if err := s.logLevel.UnmarshalText([]byte(val("LOG_LEVEL", "info"))); err != nil {
		return s, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	if err := c.Validate(); err != nil {
		return s, err
	}
	return s, nil
}

// parseByteSize reads "1048576", "512KiB", "1MiB", "1GiB" (and KB/MB/GB as
// powers of 1000).
func parseByteSize(raw string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := raw, int64(1)
	for _, u := range units {
		if strings.HasSuffix(raw, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(raw, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a positive size (bytes, or with KiB/MiB/GiB)", raw)
	}
	return n * mult, nil
}
