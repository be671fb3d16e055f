package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os/exec"
	"time"

	"github.com/wardgate/wardgate/diag/upload"
	"github.com/wardgate/wardgate/stack"
	"github.com/wardgate/wardgate/telemetry"
)

const upUsage = `Usage: wardgate up [flags]

Runs the whole stack on this machine: a gateway on --listen in front of
--jobqueues job-queue processes on free loopback ports, each a supervised
child process of this one. up holds every child's ports for its whole life,
so a restarted child gets the same ones: the gateway's sockets are passed to
it as fd/3 and fd/4 (clients connecting while it restarts wait, not refused;
in a crash loop's backoff of 1s or more up answers them 503 + Retry-After);
a job queue's ports are reserved and refuse while it is down (the gateway
retries on another job queue). When everything answers, up prints one row per
process: service, pid, public URL and the full URL of its /metrics (every
process has its own admin listener on loopback with /metrics,
/debug/pprof/ and /healthz). The row "up" is this process: its admin
listener (--admin) serves the supervisor's metrics (restarts, children up,
post-mortems, watchdog captures) and GET /status.

The table's PID column is the pid at start; a restarted child has a new
one. Which pid does a service have NOW:
  cat DATA/run/<service>/pid    the decimal pid and a newline; the file exists
                                only while that process runs (replaced at each
                                restart, removed when it dies or up stops it)
  curl -s http://ADMIN/status   JSON {"services":[{"service":"gateway","pid":123,
                                "state":"running","restarts":0,"public":"...",
                                "metrics":"...","started_at":"RFC 3339"},...]}
ADMIN is the host:port of up's METRICS URL (--admin). state is starting,
running, restarting (died, restart pending), stopping or stopped.
Example: wardgate diag capture --pid $(cat data/run/gateway/pid)

State lives under --data:
  DATA/blobs/                   stored payloads (default blob store)
  DATA/run/<service>/           working dir, stdout.log, stderr.log, crash.txt
  DATA/run/<service>/pid        pid of its current process (while it runs)
  DATA/run/admin-token          this run's token for /debug/pprof/ on every admin
                                listener (mode 0600; diag commands read it with
                                --data DATA or --pid-file DATA/run/<service>/pid)
  DATA/run/gateway/gateway.yaml the generated gateway config
  DATA/run/prometheus/          prometheus.yml and targets.json (file_sd):
                                what a Prometheus needs to scrape every
                                process, rewritten at every start
  DATA/prometheus/              TSDB of the Prometheus of --prometheus
  DATA/postmortem/<UTC time>-<service>-<pid>/
                                core, exe, crash.txt, bundle.json, report.md,
                                report.json of a child that crashed

Children run with GOTRACEBACK=crash, GODEBUG=tracebacklabels=1 and
RLIMIT_CORE raised to the hard limit, so a crash leaves a core. A child that
dies is restarted with backoff (100ms doubling to 10s) on the same ports; if
it left a core, up writes a post-mortem and logs one line: its path (key
"postmortem"), the report's headline and path. A crash's goroutine dump is
kept in DATA/run/<service>/stderr.log and the post-mortem, not printed.
A child stuck in its crash path is captured live and killed.

Stop with Ctrl-C or SIGTERM: the gateway stops accepting first, then the
job queues drain and flush, and up exits 0 with nothing acknowledged lost.

Dashboards without Docker: --prometheus runs the prometheus binary found on
PATH as one more supervised child on those files (its URL is in the table);
docs/dashboards.md shows the boards in Grafana with one more command.

OTEL_* variables are passed to the children; OTEL_SERVICE_NAME is set per
child (wardgate-gateway, wardgate-jobqueue-1, ...) unless you set it.

One service as a container's entrypoint (--only): up supervises just that
service, with the same restarts, post-mortems and crash reports as the whole
stack, so a crash in a pod leaves a report. --only jobqueue runs one
"wardgate jobqueue" configured by the environment exactly as that command
reads it (LISTEN, ADMIN_LISTEN, BLOB_URL, ...; LISTEN needs a fixed port, and
0.0.0.0 in a container, so the kubelet and the Service reach it); --only
gateway runs "wardgate gateway --config FILE" (--gateway-config) on the
listen: and admin: addresses of FILE, whose sockets up holds across
restarts. Set --data to a writable volume. Example (Kubernetes):
  wardgate up --only jobqueue --data /home/nonroot/wardgate --upload s3://...

Post-mortems to a blob store (--upload URL, or WARDGATE_UPLOAD): every
post-mortem directory is also uploaded as one object
HOST/<post-mortem dir>.tar.gz (HOST: the hostname, a pod's name), same URLs
as the job queue's BLOB_URL (s3://bucket?endpoint=...&region=...
&use_path_style=true; prefix=DIR/ puts it under DIR/; credentials from
AWS_*). up logs "post-mortem uploaded" with the key and the report's first
lines; a failed upload is logged, the bundle stays under DATA/postmortem
and up exits 4 when it stops.

Exit codes: 0 stopped cleanly, 1 failure, 2 bad usage, 4 stopped but a
post-mortem upload failed.

Full guide: docs/up.md.

Flags:
`

// promErrNotOnPath is the one line `up --prometheus` prints when there is
// nothing to run.
const promErrNotOnPath = "--prometheus: no prometheus binary on PATH; install one (Debian/Ubuntu: apt-get install prometheus; or https://prometheus.io/download/) or run up without --prometheus and start yours with --config.file=DATA/run/prometheus/prometheus.yml"

// upConfig is the parsed command line of `wardgate up`: the stack to run
// and up's own log level.
type upConfig struct {
	stack    stack.Config
	logLevel slog.Level
}

func parseUp(args []string, stdout, stderr io.Writer) (upConfig, int, bool) {
	var u upConfig
	c := &u.stack
	fs := flag.NewFlagSet("wardgate up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "public `ADDR` (host:port) of the gateway; port 0 picks a free one (printed in the table)")
	fs.StringVar(&c.Admin, "admin", "127.0.0.1:0", "`ADDR` (host:port) of up's own admin listener: /metrics, /debug/pprof/, /healthz, /status (current pid of every service); keep it on loopback (ADMIN_TOKEN applies)")
	fs.StringVar(&c.Data, "data", "./data", "`DIR` for all state: blobs, run dirs and logs, post-mortems")
	fs.IntVar(&c.JobQueues, "jobqueues", 2, "how many job-queue processes to run behind the gateway (`N`)")
	fs.IntVar(&c.Workers, "workers", 0, "MAX_WORKERS of each job queue: worker goroutines (`N`; 0 = the job queue's default, 2*GOMAXPROCS, at least 4)")
	fs.IntVar(&c.Queue, "queue", 0, "MAX_QUEUE of each job queue: payloads acked and not yet stored (`N`; 0 = the job queue's default, 200000)")
	fs.StringVar(&c.AckMode, "ack-mode", "", "ACK_MODE of each job queue: enqueued (answer 202 once queued) or durable (once stored); empty = enqueued")
	fs.StringVar(&c.BlobURL, "blob-url", "", "blob store `URL` of the job queues: file:///abs/dir, s3://bucket?endpoint=...&use_path_style=true, mem:// (default file://DATA/blobs)")
	level := fs.String("log-level", "info", "minimum `LEVEL` of up's own log: debug, info, warn or error")
	fs.DurationVar(&c.StartTimeout, "start-timeout", time.Minute, "how long each process may take to become ready")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", 2*time.Minute, "how long a process may take to drain on shutdown before it is killed")
	runProm := fs.Bool("prometheus", false, "also run the `prometheus` binary found on PATH as a supervised child, scraping every process (config: DATA/run/prometheus/prometheus.yml, written either way; TSDB: DATA/prometheus); its URL is in the table")
	fs.StringVar(&c.PrometheusListen, "prometheus-listen", "127.0.0.1:0", "`ADDR` (host:port) of the Prometheus of --prometheus; port 0 picks a free one; pin it (e.g. 127.0.0.1:9090) for a Grafana data source")
	fs.DurationVar(&c.ScrapeInterval, "scrape-interval", 5*time.Second, "scrape_interval of the generated prometheus.yml")
	fs.StringVar(&c.Only, "only", "", "run just this `SERVICE`, gateway or jobqueue, as a container's entrypoint (see above); empty: the whole stack")
	fs.StringVar(&c.GatewayConfig, "gateway-config", "", "with --only gateway: the gateway's YAML config `FILE` (its listen: and admin: are where it listens)")
	uploadFlag := fs.String("upload", "", "also upload every post-mortem to this blob store `URL` (default $"+upload.Env+"; s3://bucket?endpoint=...&region=...&use_path_style=true, file:///dir)")
	fs.IntVar(&c.KeepPostmortems, "keep-postmortems", 20, "keep the newest `N` post-mortem dirs under DATA/postmortem (each holds a core and an exe copy); 0 keeps all")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), upUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return u, code, false
	}
	fail := func(format string, a ...any) (upConfig, int, bool) {
		return u, usageError(stderr, fs.Name(), format, a...), false
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		return fail("--listen: want host:port, got %q", c.Listen)
	}
	if _, port, err := net.SplitHostPort(c.Admin); err != nil || port == "" {
		return fail("--admin: want host:port, got %q", c.Admin)
	}
	if c.Data == "" {
		return fail("--data: must not be empty")
	}
	if c.JobQueues < 1 {
		return fail("--jobqueues: must be at least 1, got %d", c.JobQueues)
	}
	if c.Workers < 0 {
		return fail("--workers: must be >= 0, got %d", c.Workers)
	}
	if c.Queue < 0 {
		return fail("--queue: must be >= 0, got %d", c.Queue)
	}
	if c.KeepPostmortems < 0 {
		return fail("--keep-postmortems: must be >= 0, got %d", c.KeepPostmortems)
	}
	switch c.AckMode {
	case "", "enqueued", "durable":
	default:
		return fail("--ack-mode: want enqueued or durable, got %q", c.AckMode)
	}
	if c.BlobURL != "" {
		u, err := url.Parse(c.BlobURL)
		if err != nil || u.Scheme == "" {
			return fail("--blob-url: want a URL such as file:///abs/dir, s3://bucket or mem://, got %q", c.BlobURL)
		}
	}
	if err := u.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return fail("--log-level: want debug, info, warn or error, got %q", *level)
	}
	if c.StartTimeout <= 0 || c.StopTimeout <= 0 {
		return fail("--start-timeout and --stop-timeout must be > 0")
	}
	if c.ScrapeInterval < time.Millisecond {
		return fail("--scrape-interval: must be at least 1ms, got %s", c.ScrapeInterval)
	}
	if _, port, err := net.SplitHostPort(c.PrometheusListen); err != nil || port == "" {
		return fail("--prometheus-listen: want host:port, got %q", c.PrometheusListen)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch c.Only {
	case "":
		if c.GatewayConfig != "" {
			return fail("--gateway-config is only used with --only gateway")
		}
	case stack.OnlyGateway, stack.OnlyJobqueue:
		if c.Only == stack.OnlyGateway && c.GatewayConfig == "" {
			return fail("--only gateway needs --gateway-config FILE (the gateway's config: routes, upstreams, listen:, admin:)")
		}
		if c.Only == stack.OnlyJobqueue && c.GatewayConfig != "" {
			return fail("--gateway-config is only used with --only gateway")
		}
		for _, name := range []string{"jobqueues", "prometheus", "prometheus-listen", "scrape-interval", "listen"} {
			if set[name] {
				return fail("--%s does not apply with --only %s (the service's own configuration says where it listens)", name, c.Only)
			}
		}
		if c.Only == stack.OnlyGateway {
			for _, name := range []string{"workers", "queue", "ack-mode", "blob-url"} {
				if set[name] {
					return fail("--%s is a job-queue setting; it does not apply with --only gateway", name)
				}
			}
		}
	default:
		return fail("--only: want gateway or jobqueue, got %q (one service per up: in Kubernetes each service is its own Deployment)", c.Only)
	}
	if c.Upload = upload.URL(*uploadFlag); c.Upload != "" {
		if err := upload.Check(c.Upload); err != nil {
			return fail("--upload / %s: %v", upload.Env, err)
		}
	}
	if *runProm {
		bin, err := exec.LookPath("prometheus")
		if err != nil {
			return fail("%s", promErrNotOnPath)
		}
		c.Prometheus = bin
	}
	return u, 0, true
}

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := parseUp(args, stdout, stderr)
	if !ok {
		return code
	}
	log := telemetry.NewLogger(stderr, "wardgate-up", cfg.logLevel)
	st := &stack.Stack{Config: cfg.stack, Logger: log, Stdout: stdout, Stderr: stderr}
	err := st.Run(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Interrupted while starting: everything started was stopped in
		// order, which is what the user asked for.
		log.Info("interrupted during start; stopped", "err", err.Error())
		return 0
	}
	if le, ok := errors.AsType[*stack.ListenError](err); ok {
		fmt.Fprintf(stderr, "wardgate up: %v\n", &listenError{setting: le.Flag, addr: le.Addr, err: le.Err})
		return 1
	}
	if errors.Is(err, stack.ErrUpload) {
		log.Error("stopped; post-mortems not uploaded are kept on disk", "err", err.Error())
		return exitUploadFailed
	}
	if err != nil {
		log.Error("up failed", "err", err.Error())
		return 1
	}
	return 0
}

// exitUploadFailed is the exit code of a command that wrote its bundles
// but could not upload one (--upload): the work is on disk, not in the
// bucket.
const exitUploadFailed = 4
