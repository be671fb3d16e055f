package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardgate/wardgate/internal/listen"
	"github.com/wardgate/wardgate/supervisor"
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

Full guide: docs/up.md.

Flags:
`

// upConfig is the parsed command line of `wardgate up`.
type upConfig struct {
	listen    string
	admin     string
	data      string
	jobqueues int
	workers   int
	queue     int
	ackMode   string
	blobURL   string
	logLevel  slog.Level
	startWait time.Duration
	stopWait  time.Duration
	keepPM    int
	// prometheus is the binary `up --prometheus` runs ("" = none).
	prometheus  string
	promListen  string
	scrapeEvery time.Duration
}

func parseUp(args []string, stdout, stderr io.Writer) (upConfig, int, bool) {
	var c upConfig
	fs := flag.NewFlagSet("wardgate up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "public `ADDR` (host:port) of the gateway; port 0 picks a free one (printed in the table)")
	fs.StringVar(&c.admin, "admin", "127.0.0.1:0", "`ADDR` (host:port) of up's own admin listener: /metrics, /debug/pprof/, /healthz, /status (current pid of every service); keep it on loopback (ADMIN_TOKEN applies)")
	fs.StringVar(&c.data, "data", "./data", "`DIR` for all state: blobs, run dirs and logs, post-mortems")
	fs.IntVar(&c.jobqueues, "jobqueues", 2, "how many job-queue processes to run behind the gateway (`N`)")
	fs.IntVar(&c.workers, "workers", 0, "MAX_WORKERS of each job queue: worker goroutines (`N`; 0 = the job queue's default, 2*GOMAXPROCS, at least 4)")
	fs.IntVar(&c.queue, "queue", 0, "MAX_QUEUE of each job queue: payloads acked and not yet stored (`N`; 0 = the job queue's default, 200000)")
	fs.StringVar(&c.ackMode, "ack-mode", "", "ACK_MODE of each job queue: enqueued (answer 202 once queued) or durable (once stored); empty = enqueued")
	fs.StringVar(&c.blobURL, "blob-url", "", "blob store `URL` of the job queues: file:///abs/dir, s3://bucket?endpoint=...&use_path_style=true, mem:// (default file://DATA/blobs)")
	level := fs.String("log-level", "info", "minimum `LEVEL` of up's own log: debug, info, warn or error")
	fs.DurationVar(&c.startWait, "start-timeout", time.Minute, "how long each process may take to become ready")
	fs.DurationVar(&c.stopWait, "stop-timeout", 2*time.Minute, "how long a process may take to drain on shutdown before it is killed")
	runProm := fs.Bool("prometheus", false, "also run the `prometheus` binary found on PATH as a supervised child, scraping every process (config: DATA/run/prometheus/prometheus.yml, written either way; TSDB: DATA/prometheus); its URL is in the table")
	fs.StringVar(&c.promListen, "prometheus-listen", "127.0.0.1:0", "`ADDR` (host:port) of the Prometheus of --prometheus; port 0 picks a free one; pin it (e.g. 127.0.0.1:9090) for a Grafana data source")
	fs.DurationVar(&c.scrapeEvery, "scrape-interval", 5*time.Second, "scrape_interval of the generated prometheus.yml")
	fs.IntVar(&c.keepPM, "keep-postmortems", 20, "keep the newest `N` post-mortem dirs under DATA/postmortem (each holds a core and an exe copy); 0 keeps all")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), upUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return c, code, false
	}
	fail := func(format string, a ...any) (upConfig, int, bool) {
		return c, usageError(stderr, fs.Name(), format, a...), false
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if _, port, err := net.SplitHostPort(c.listen); err != nil || port == "" {
		return fail("--listen: want host:port, got %q", c.listen)
	}
	if _, port, err := net.SplitHostPort(c.admin); err != nil || port == "" {
		return fail("--admin: want host:port, got %q", c.admin)
	}
	if c.data == "" {
		return fail("--data: must not be empty")
	}
	if c.jobqueues < 1 {
		return fail("--jobqueues: must be at least 1, got %d", c.jobqueues)
	}
	if c.workers < 0 {
		return fail("--workers: must be >= 0, got %d", c.workers)
	}
	if c.queue < 0 {
		return fail("--queue: must be >= 0, got %d", c.queue)
	}
	if c.keepPM < 0 {
		return fail("--keep-postmortems: must be >= 0, got %d", c.keepPM)
	}
	switch c.ackMode {
	case "", "enqueued", "durable":
	default:
		return fail("--ack-mode: want enqueued or durable, got %q", c.ackMode)
	}
	if c.blobURL != "" {
		u, err := url.Parse(c.blobURL)
		if err != nil || u.Scheme == "" {
			return fail("--blob-url: want a URL such as file:///abs/dir, s3://bucket or mem://, got %q", c.blobURL)
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return fail("--log-level: want debug, info, warn or error, got %q", *level)
	}
	if c.startWait <= 0 || c.stopWait <= 0 {
		return fail("--start-timeout and --stop-timeout must be > 0")
	}
	if c.scrapeEvery < time.Millisecond {
		return fail("--scrape-interval: must be at least 1ms, got %s", c.scrapeEvery)
	}
	if _, port, err := net.SplitHostPort(c.promListen); err != nil || port == "" {
		return fail("--prometheus-listen: want host:port, got %q", c.promListen)
	}
	if *runProm {
		bin, err := exec.LookPath("prometheus")
		if err != nil {
			return fail("%s", promErrNotOnPath)
		}
		c.prometheus = bin
	}
	return c, 0, true
}

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := parseUp(args, stdout, stderr)
	if !ok {
		return code
	}
	log := telemetry.NewLogger(stderr, "wardgate-up", cfg.logLevel)
	err := up(ctx, cfg, log, stdout, stderr)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Interrupted while starting: everything started was stopped in
		// order, which is what the user asked for.
		log.Info("interrupted during start; stopped", "err", err.Error())
		return 0
	}
	var le *listenError
	if errors.As(err, &le) {
		fmt.Fprintf(stderr, "wardgate up: %v\n", err)
		return 1
	}
	if err != nil {
		log.Error("up failed", "err", err.Error())
		return 1
	}
	return 0
}

func up(ctx context.Context, cfg upConfig, log *slog.Logger, stdout, stderr io.Writer) (err error) {
	upStarted := time.Now()
	data, err := filepath.Abs(cfg.data)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own executable: %w", err)
	}
	// up binds every child's ports and keeps them (see heldSockets); the
	// public one and up's admin first, so a taken port fails clearly before
	// anything starts or is created under --data.
	socks := &heldSockets{}
	defer socks.Close()
	gwPubLn, gwPub, err := socks.bind(ctx, cfg.listen)
	if err != nil {
		return &listenError{setting: "--listen", addr: cfg.listen, err: err}
	}
	gwPublic := gwPubLn.Addr().String()
	admLn, err := net.Listen("tcp", cfg.admin)
	if err != nil {
		return &listenError{setting: "--admin", addr: cfg.admin, err: err}
	}
	defer admLn.Close() // normally closed by the admin server's Shutdown first
	// A pinned --prometheus-listen port that is taken fails now, in one
	// line naming the flag, not after the whole stack started.
	if err := checkPromListen(ctx, cfg); err != nil {
		return err
	}
	blobURL := cfg.blobURL
	if blobURL == "" {
		blobs := filepath.Join(data, "blobs")
		if err := os.MkdirAll(blobs, 0o700); err != nil {
			return fmt.Errorf("blob dir: %w", err)
		}
		blobURL = (&url.URL{Scheme: "file", Path: blobs}).String()
	}
	// A fresh admin token per run guards every process's /debug/pprof/;
	// diag commands find it from --data or --pid-file.
	tokenFile := filepath.Join(data, telemetry.AdminTokenFile)
	adminToken, err := telemetry.GenerateAdminToken(tokenFile)
	if err != nil {
		return err
	}
	defer os.Remove(tokenFile)
	// Through a short restart the gateway's clients wait in the accept
	// queue; through a crash loop's long backoff up answers them 503 with
	// Retry-After itself rather than let them hang for seconds.
	standIn, err := supervisor.NewStandIn(gwPubLn, "gateway", log)
	if err != nil {
		return err
	}

	// up's own telemetry and admin listener: the supervisor's metrics, and
	// pprof of the supervisor itself. It stays up until the children are
	// stopped, so the last restarts and post-mortems can still be scraped.
	tel, err := telemetry.Setup(ctx, "wardgate-up")
	if err != nil {
		return err
	}
	tel.DebugToken = adminToken
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := tel.Shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("telemetry: %w", serr))
		}
	}()
	hooks := newPostmortemHooks(log)
	sup, err := supervisor.New(supervisor.Options{
		OnEvent: func(e supervisor.Event) {
			if e.Service != "gateway" {
				return
			}
			switch {
			case e.Kind == supervisor.EventRestarting && e.Delay >= standInAfter:
				standIn.Start(e.Delay)
			case e.Kind == supervisor.EventStarted:
				standIn.Stop()
			}
		},
		DataDir:       data,
		Logger:        log,
		MeterProvider: tel.MeterProvider,
		Forward:       stderr,
		// Access-log lines stay in DATA/run/<service>/stderr.log: copying
		// thousands a second through up's pipe is pure overhead. Errors
		// (5xx access lines included) and everything else still show.
		ForwardFilter:   notInfoAccessLog,
		Analyze:         hooks.analyze,
		Capture:         hooks.capture,
		KeepPostmortems: cfg.keepPM,
	})
	if err != nil {
		return err
	}
	// up's own row of the table and of /status.
	self := supervisor.Status{
		Name:       "up",
		PID:        os.Getpid(),
		State:      supervisor.StateRunning,
		StartedAt:  upStarted,
		MetricsURL: "http://" + admLn.Addr().String() + "/metrics",
	}
	admSrv := &http.Server{
		Handler: tel.AdminHandler(os.Getenv("ADMIN_TOKEN"), map[string]http.Handler{
			"GET /status": sup.StatusHandler(self),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	admDone := make(chan error, 1)
	go func() { admDone <- admSrv.Serve(admLn) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = admSrv.Shutdown(sctx) // a scrape still running after 5s is cut off
		if serr := <-admDone; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("admin listener: %w", serr))
		}
	}()

	// Whatever happens from here on, stop what was started, in order. This
	// runs before the admin listener's shutdown above, so /metrics and
	// /status show the drain to the end.
	defer func() {
		log.Info("shutting down: gateway first, then the job queues drain")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.stopWait+30*time.Second)
		defer cancel()
		// Once a child closes its listener on stop, its port must refuse,
		// not queue connections that nobody will accept.
		standIn.Stop()
		socks.Close()
		if serr := sup.Shutdown(sctx); serr != nil {
			err = errors.Join(err, serr)
		} else {
			log.Info("stopped cleanly")
		}
	}()

	var targets []string
	for i := 1; i <= cfg.jobqueues; i++ {
		name := "jobqueue-" + strconv.Itoa(i)
		pub, err := socks.reserve()
		if err != nil {
			return err
		}
		adm, err := socks.reserve()
		if err != nil {
			return err
		}
		env := childEnv(name, map[string]string{
			telemetry.AdminTokenFileEnv: tokenFile,
			"LISTEN":                    pub,
			"ADMIN_LISTEN":              adm,
			"BLOB_URL":                  blobURL,
			"SPILL_DIR":                 filepath.Join(data, "spill"), // shared: a spilled object is uploaded under its own key
			"MAX_WORKERS":               intOrEmpty(cfg.workers),
			"MAX_QUEUE":                 intOrEmpty(cfg.queue),
			"ACK_MODE":                  cfg.ackMode,
		})
		spec := supervisor.Spec{
			Name:        name,
			Command:     func() *exec.Cmd { c := exec.Command(exe, "jobqueue"); c.Env = env; return c },
			ReadyLine:   "listening ",
			HealthURL:   "http://" + pub + "/healthz",
			StopOrder:   1,
			StopTimeout: cfg.stopWait,
			PublicURL:   "http://" + pub,
			MetricsURL:  "http://" + adm + "/metrics",
		}
		if err := startWithin(ctx, sup, spec, cfg.startWait); err != nil {
			return err
		}
		targets = append(targets, "http://"+pub)
	}

	gwAdmLn, gwAdm, err := socks.bind(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	gwAdmin := gwAdmLn.Addr().String()
	gwDir := filepath.Join(data, "run", "gateway")
	if err := os.MkdirAll(gwDir, 0o700); err != nil {
		return fmt.Errorf("gateway dir: %w", err)
	}
	gwConfig := filepath.Join(gwDir, "gateway.yaml")
	if err := os.WriteFile(gwConfig, []byte(gatewayYAML(inheritedFD(0), inheritedFD(1), targets)), 0o600); err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	gwEnv := childEnv("gateway", map[string]string{telemetry.AdminTokenFileEnv: tokenFile})
	public := "http://" + gwPublic
	gw := supervisor.Spec{
		Name: "gateway",
		Command: func() *exec.Cmd {
			c := exec.Command(exe, "gateway", "--config", gwConfig)
			c.Env, c.ExtraFiles = gwEnv, []*os.File{gwPub, gwAdm}
			return c
		},
		HealthURL:   "http://" + gwAdmin + "/healthz",
		StopOrder:   0,
		StopTimeout: cfg.stopWait,
		PublicURL:   public,
		MetricsURL:  "http://" + gwAdmin + "/metrics",
	}
	if err := startWithin(ctx, sup, gw, cfg.startWait); err != nil {
		return err
	}
	if err := waitRouted(ctx, public+"/v1/payloads", cfg.startWait); err != nil {
		return fmt.Errorf("gateway on %s: %w", gwPublic, err)
	}
	// What a Prometheus needs to scrape the stack, then (--prometheus)
	// that Prometheus, started last so its first scrape finds everyone.
	promDir := filepath.Join(data, "run", promDirName)
	if err := writePromFiles(promDir, append([]supervisor.Status{self}, sup.Status()...), cfg.scrapeEvery); err != nil {
		return err
	}
	if cfg.prometheus != "" {
		addr, err := promAddr(socks, cfg.promListen)
		if err != nil {
			return err
		}
		if err := startWithin(ctx, sup, promSpec(cfg.prometheus, promDir, filepath.Join(data, "prometheus"), addr, cfg.stopWait), cfg.startWait); err != nil {
			return err
		}
	}
	printTable(stdout, self, sup.Status())
	fmt.Fprintf(stdout, "\ndata: %s  blobs: %s\npost-mortems: %s\nlogs: %s/<service>/{stdout,stderr}.log\ncurrent pids (after restarts): %s/<service>/pid, or GET http://%s/status\nprometheus: %s (targets: %s)\nstop: Ctrl-C or kill -TERM %d\n",
		data, blobURL, filepath.Join(data, "postmortem"), filepath.Join(data, "run"), filepath.Join(data, "run"), admLn.Addr(),
		filepath.Join(promDir, promConfigName), filepath.Join(promDir, promTargetsName), os.Getpid())
	log.Info("stack up", "listen", gwPublic, "data", data)
	<-ctx.Done()
	return nil
}

func startWithin(ctx context.Context, sup *supervisor.Supervisor, spec supervisor.Spec, d time.Duration) error {
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := sup.Start(sctx, spec); err != nil {
		return err
	}
	return nil
}

// waitRouted waits until the gateway proxies to a job queue: any answer but
// 502/503/504 (a GET on the ingest path gets 405 from the job queue).
func waitRouted(ctx context.Context, u string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	last := errors.New("no answer yet")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				last = fmt.Errorf("GET %s: %s", u, resp.Status)
			default:
				return nil
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// heldSockets keeps every child's ports for up's whole life, so a restarted
// child gets the same ones and no other process can take one in between (as
// it could when up picked a free port and let the child bind it later).
//
//   - The gateway's sockets are bound and listening in up and passed to every
//     gateway process as fd/3, fd/4 (internal/listen): a client connecting
//     while the gateway restarts waits in the accept queue, not refused;
//     the gateway is the edge, its clients have nowhere else to go.
//   - A job queue's ports are reserved (bound, not listening) and the job
//     queue listens on them itself: while it is down, connections are
//     refused, so the gateway retries them on another job queue at once.
type heldSockets struct {
	lns      []net.Listener
	files    []*os.File
	reserved []*listen.Reservation
}

// reserve holds a free loopback port and returns its host:port.
func (h *heldSockets) reserve() (string, error) { return h.reserveOn("127.0.0.1") }

// reserveOn holds a free port on the IPv4 address host.
func (h *heldSockets) reserveOn(host string) (string, error) {
	r, err := listen.Reserve(host)
	if err != nil {
		return "", err
	}
	h.reserved = append(h.reserved, r)
	return r.Addr(), nil
}

// bind listens on addr and returns up's listener (its Addr is the port
// picked when addr's is 0) and a copy of the socket to pass to a child.
func (h *heldSockets) bind(ctx context.Context, addr string) (net.Listener, *os.File, error) {
	ln, err := listen.Listen(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	f, err := listen.File(ln)
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	h.lns, h.files = append(h.lns, ln), append(h.files, f)
	return ln, f, nil
}

// Close closes up's copies and reservations; children keep their own
// sockets until they stop.
func (h *heldSockets) Close() {
	for i := range h.lns {
		_ = h.lns[i].Close()
		_ = h.files[i].Close()
	}
	for _, r := range h.reserved {
		_ = r.Close()
	}
	h.lns, h.files, h.reserved = nil, nil, nil
}

// standInAfter is the shortest restart backoff during which up answers the
// gateway's clients itself (503, Retry-After) instead of queueing them: the
// first restarts of a crash (100ms, 200ms, ...) stay invisible but slow.
const standInAfter = time.Second

// inheritedFD is the listen address of a child's ExtraFiles[i].
func inheritedFD(i int) string { return "fd/" + strconv.Itoa(3+i) }

func intOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// childEnv is up's environment (OTEL_* and everything else passes through)
// plus the child's settings; empty values are left out so the child's own
// defaults apply. OTEL_SERVICE_NAME names the child unless the user set it.
func childEnv(service string, set map[string]string) []string {
	env := os.Environ()
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		env = append(env, "OTEL_SERVICE_NAME=wardgate-"+service)
	}
	for k, v := range set {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// gatewayYAML is the config of the embedded gateway (see docs/gateway.md).
func gatewayYAML(listen, admin string, targets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by wardgate up; rewritten at every start. Reference: docs/gateway.md.
# fd/3 and fd/4 are sockets up holds and passes to every gateway process:
# the addresses are in up's table, GET /status and the "gateway listening" log.
listen: %q
admin: %q
routes:
  - path_prefix: /v1/
    upstream: jobqueue
upstreams:
  jobqueue:
    balancer: round_robin
    targets:
`, listen, admin)
	for _, t := range targets {
		fmt.Fprintf(&b, "      - {url: %q, weight: 1}\n", t)
	}
	b.WriteString(`    health_check: {path: /healthz, interval: 1s, timeout: 500ms, fall: 2, rise: 1}
    passive: {fail_threshold: 3, window: 10s, eject_for: 5s}
    retries: 1
    timeouts: {dial: 1s, response_header: 30s}
`)
	return b.String()
}

// printTable prints up's row, then the children in the supervisor's order
// (the gateway, then the job queues). The PID column is the pid at the time
// of printing; /status and the pid files follow restarts.
func printTable(w io.Writer, self supervisor.Status, children []supervisor.Status) {
	rows := append([]supervisor.Status{self}, children...)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPID\tPUBLIC\tMETRICS")
	for _, r := range rows {
		public := r.PublicURL
		if public == "" {
			public = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Name, r.PID, public, r.MetricsURL)
	}
	_ = tw.Flush()
}

// notInfoAccessLog reports whether a child's output line is worth showing on
// up's terminal: anything but an info-level access-log line.
func notInfoAccessLog(line []byte) bool {
	return !(bytes.Contains(line, []byte(`"msg":"http request"`)) && bytes.Contains(line, []byte(`"level":"INFO"`)))
}
