// Package stack is the stack `wardgate up` runs on one machine: a gateway
// in front of N job queues (and optionally a Prometheus), each a supervised
// child process, with the ports up holds for them, their environment, the
// generated gateway config, readiness, the post-mortem hooks and the files
// a Prometheus needs. cmd/wardgate only parses up's flags into a Config and
// calls Stack.Run.
//
// The stack is a package of its own, not part of supervisor/: the
// supervisor knows how to run, restart and post-mortem any child; this
// package knows which children wardgate has and how they are wired
// together (docs/up.md, docs/architecture.md).
package stack

import (
	"bytes"
	"context"
	"errors"
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

	"github.com/wardgate/wardgate/diag/upload"
	"github.com/wardgate/wardgate/gateway"
	"github.com/wardgate/wardgate/supervisor"
	"github.com/wardgate/wardgate/telemetry"
)

// Config is what `wardgate up` runs; each field names the flag that sets it.
type Config struct {
	Listen    string // --listen: public host:port of the gateway
	Admin     string // --admin: host:port of up's own admin listener
	Data      string // --data: directory of all state
	JobQueues int    // --jobqueues: job-queue processes behind the gateway (at least 1)
	Workers   int    // --workers: MAX_WORKERS of each job queue (0: its default)
	Queue     int    // --queue: MAX_QUEUE of each job queue (0: its default)
	AckMode   string // --ack-mode: ACK_MODE of each job queue ("": its default)
	BlobURL   string // --blob-url: BLOB_URL of the job queues ("": file://DATA/blobs)

	StartTimeout    time.Duration // --start-timeout: how long each process may take to become ready
	StopTimeout     time.Duration // --stop-timeout: how long each process may take to drain
	KeepPostmortems int           // --keep-postmortems: newest post-mortem dirs kept (0: all)

	// Prometheus is the prometheus binary --prometheus runs ("": none).
	Prometheus       string
	PrometheusListen string        // --prometheus-listen: host:port, port 0 picks one
	ScrapeInterval   time.Duration // --scrape-interval of the generated prometheus.yml

	// Only runs just this service, "gateway" or "jobqueue", as a
	// container's entrypoint (--only); "" runs the whole stack. The service
	// listens where its own configuration says (see Only in docs/up.md):
	// the job queue's LISTEN/ADMIN_LISTEN environment, the gateway's
	// listen:/admin: in GatewayConfig.
	Only string
	// GatewayConfig is the gateway's YAML file under Only "gateway"
	// (--gateway-config).
	GatewayConfig string
	// Upload is the blob store URL every post-mortem is uploaded to
	// (--upload, or WARDGATE_UPLOAD; diag/upload); "": disk only.
	Upload string

	// Exe is the wardgate binary every child runs ("wardgate gateway",
	// "wardgate jobqueue", "wardgate diag capture"); empty: os.Executable.
	Exe string
}

// Stack runs a Config. Logger is up's own log; Stdout gets the table of
// services once everything answers; Stderr gets the children's forwarded
// output (see notInfoAccessLog).
type Stack struct {
	Config Config
	Logger *slog.Logger
	Stdout io.Writer
	Stderr io.Writer
}

// ListenError is one of up's own listen addresses that cannot be bound;
// Flag names the flag that sets it ("--listen", "--admin"), so the caller
// can say what to change. Nothing has started when Run returns it.
type ListenError struct {
	Flag string
	Addr string
	Err  error
}

func (e *ListenError) Error() string { return fmt.Sprintf("%s %s: %v", e.Flag, e.Addr, e.Err) }
func (e *ListenError) Unwrap() error { return e.Err }

// ErrUpload is wrapped by Run's error when the stack stopped cleanly but a
// post-mortem could not be uploaded (each failure was logged; the bundles
// stay on disk). `wardgate up` exits 4 on it.
var ErrUpload = errors.New("post-mortem upload failed")

// Services Only accepts.
const (
	OnlyGateway  = "gateway"
	OnlyJobqueue = "jobqueue"
)

// run is the state of one Stack.Run: what it bound and started, which the
// start functions below extend and Run's deferred shutdown stops.
type run struct {
	*Stack
	exe, data string
	tokenFile string // the admin token every child and up itself use
	socks     *heldSockets
	sup       *supervisor.Supervisor
	self      supervisor.Status // up's own row of the table and of /status
	admLn     net.Listener      // up's admin listener
	// The gateway's sockets, bound and held by up and passed to every
	// gateway process (none under --only jobqueue). The admin one is bound
	// late for the whole stack (its port is up's choice).
	gwPubLn, gwAdmLn net.Listener
	gwPub, gwAdm     *os.File
}

// Run starts the stack (job queues, then the gateway once they answer,
// then Prometheus), prints the table and runs until ctx is canceled, then
// stops everything in order: the gateway stops accepting first, then the
// job queues drain. It returns nil after a clean stop. With Config.Only it
// starts that one service instead.
func (s *Stack) Run(ctx context.Context) (err error) {
	cfg, log := s.Config, s.Logger
	r := &run{Stack: s, exe: cfg.Exe, socks: &heldSockets{}}
	upStarted := time.Now()
	if r.data, err = filepath.Abs(cfg.Data); err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if r.exe == "" {
		if r.exe, err = os.Executable(); err != nil {
			return fmt.Errorf("own executable: %w", err)
		}
	}
	// up binds every child's ports and keeps them (see heldSockets); the
	// gateway's public one and up's admin first, so a taken port fails
	// clearly before anything starts or is created under --data.
	defer r.socks.Close()
	if err := r.bindGateway(ctx); err != nil {
		return err
	}
	if r.admLn, err = net.Listen("tcp", cfg.Admin); err != nil {
		return &ListenError{Flag: "--admin", Addr: cfg.Admin, Err: err}
	}
	defer r.admLn.Close() // normally closed by the admin server's Shutdown first
	// A pinned --prometheus-listen port that is taken fails now, in one
	// line naming the flag, not after the whole stack started.
	if err := checkPromListen(ctx, cfg); err != nil {
		return err
	}
	// A fresh admin token per run guards every process's /debug/pprof/;
	// diag commands find it from --data or --pid-file. A container
	// (--only) whose environment names a token file (a Kubernetes Secret)
	// keeps that one, so `kubectl debug` uses the same token everywhere.
	r.tokenFile = filepath.Join(r.data, telemetry.AdminTokenFile)
	var adminToken string
	if env := os.Getenv(telemetry.AdminTokenFileEnv); cfg.Only != "" && env != "" {
		r.tokenFile = env
		if adminToken, err = telemetry.ReadAdminToken(r.tokenFile); err != nil {
			return err
		}
	} else {
		if adminToken, err = telemetry.GenerateAdminToken(r.tokenFile); err != nil {
			return err
		}
		defer os.Remove(r.tokenFile)
	}
	// Through a short restart the gateway's clients wait in the accept
	// queue; through a crash loop's long backoff up answers them 503 with
	// Retry-After itself rather than let them hang for seconds.
	var standIn *supervisor.StandIn // none under --only jobqueue
	if r.gwPubLn != nil {
		if standIn, err = supervisor.NewStandIn(r.gwPubLn, "gateway", log); err != nil {
			return err
		}
	}
	// Post-mortems to the blob store, in the background: a core takes a
	// while and the crashed child is being restarted meanwhile.
	uploads := &uploader{url: cfg.Upload, log: log}

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
	hooks := newPostmortemHooks(log, r.exe)
	r.sup, err = supervisor.New(supervisor.Options{
		OnEvent: func(e supervisor.Event) {
			if e.Kind == supervisor.EventPostmortem && uploads.url != "" {
				uploads.start(context.WithoutCancel(ctx), e.Service, e.Dir)
			}
			if e.Service != "gateway" || standIn == nil {
				return
			}
			switch {
			case e.Kind == supervisor.EventRestarting && e.Delay >= standInAfter:
				standIn.Start(e.Delay)
			case e.Kind == supervisor.EventStarted:
				standIn.Stop()
			}
		},
		DataDir:       r.data,
		Logger:        log,
		MeterProvider: tel.MeterProvider,
		Forward:       s.Stderr,
		// Access-log lines stay in DATA/run/<service>/stderr.log: copying
		// thousands a second through up's pipe is pure overhead. Errors
		// (5xx access lines included) and everything else still show.
		ForwardFilter:   notInfoAccessLog,
		Analyze:         hooks.analyze,
		Capture:         hooks.capture,
		KeepPostmortems: cfg.KeepPostmortems,
	})
	if err != nil {
		return err
	}
	r.self = supervisor.Status{
		Name:       "up",
		PID:        os.Getpid(),
		State:      supervisor.StateRunning,
		StartedAt:  upStarted,
		MetricsURL: "http://" + r.admLn.Addr().String() + "/metrics",
	}
	admSrv := &http.Server{
		Handler: tel.AdminHandler(os.Getenv("ADMIN_TOKEN"), map[string]http.Handler{
			"GET /status": r.sup.StatusHandler(r.self),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	admDone := make(chan error, 1)
	go func() { admDone <- admSrv.Serve(r.admLn) }()
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
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.StopTimeout+30*time.Second)
		defer cancel()
		// Once a child closes its listener on stop, its port must refuse,
		// not queue connections that nobody will accept.
		if standIn != nil {
			standIn.Stop()
		}
		r.socks.Close()
		if serr := r.sup.Shutdown(sctx); serr != nil {
			err = errors.Join(err, serr)
		} else {
			log.Info("stopped cleanly")
		}
		// Post-mortems of the last moments still go up before the exit.
		// ErrUpload only when nothing else failed: it says "stopped
		// cleanly, but a bundle is only on disk" (each failure is logged).
		if n := uploads.wait(); n > 0 && err == nil {
			err = fmt.Errorf("%d post-mortem uploads failed (kept under %s): %w", n, filepath.Join(r.data, "postmortem"), ErrUpload)
		}
	}()

	switch cfg.Only {
	case OnlyJobqueue, OnlyGateway:
		err = r.startOnly(ctx)
	default:
		err = r.startWhole(ctx)
	}
	if err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// bindGateway binds the gateway's public socket (--listen; under --only
// gateway the config file's listen:, and its admin: too), which up holds
// for the gateway's whole life.
func (r *run) bindGateway(ctx context.Context) error {
	cfg := r.Config
	switch cfg.Only {
	case OnlyJobqueue:
		return nil
	case OnlyGateway:
		gc, err := gateway.LoadWith(cfg.GatewayConfig, nil)
		if err != nil {
			return fmt.Errorf("--gateway-config %s: %w", cfg.GatewayConfig, err)
		}
		for _, a := range []string{gc.Listen, gc.Admin} {
			if strings.HasPrefix(a, "fd/") {
				return fmt.Errorf("--gateway-config %s: %s: under up the gateway's addresses must be host:port (up holds the sockets and passes them itself)", cfg.GatewayConfig, a)
			}
		}
		if r.gwPubLn, r.gwPub, err = r.socks.bind(ctx, gc.Listen); err != nil {
			return &ListenError{Flag: "listen: in " + cfg.GatewayConfig, Addr: gc.Listen, Err: err}
		}
		if r.gwAdmLn, r.gwAdm, err = r.socks.bind(ctx, gc.Admin); err != nil {
			return &ListenError{Flag: "admin: in " + cfg.GatewayConfig, Addr: gc.Admin, Err: err}
		}
		return nil
	}
	var err error
	if r.gwPubLn, r.gwPub, err = r.socks.bind(ctx, cfg.Listen); err != nil {
		return &ListenError{Flag: "--listen", Addr: cfg.Listen, Err: err}
	}
	return nil
}

// startWhole starts the whole stack: the job queues, then the gateway in
// front of them once they answer, then (--prometheus) Prometheus, and
// prints the table.
func (r *run) startWhole(ctx context.Context) error {
	cfg, data := r.Config, r.data
	blobURL := cfg.BlobURL
	if blobURL == "" {
		blobs := filepath.Join(data, "blobs")
		if err := os.MkdirAll(blobs, 0o700); err != nil {
			return fmt.Errorf("blob dir: %w", err)
		}
		blobURL = (&url.URL{Scheme: "file", Path: blobs}).String()
	}
	var targets []string
	for i := 1; i <= cfg.JobQueues; i++ {
		name := "jobqueue-" + strconv.Itoa(i)
		pub, err := r.socks.reserve()
		if err != nil {
			return err
		}
		adm, err := r.socks.reserve()
		if err != nil {
			return err
		}
		env := childEnv(name, map[string]string{
			telemetry.AdminTokenFileEnv: r.tokenFile,
			"LISTEN":                    pub,
			"ADMIN_LISTEN":              adm,
			"BLOB_URL":                  blobURL,
			"SPILL_DIR":                 filepath.Join(data, "spill"), // shared: a spilled object is uploaded under its own key
			"MAX_WORKERS":               intOrEmpty(cfg.Workers),
			"MAX_QUEUE":                 intOrEmpty(cfg.Queue),
			"ACK_MODE":                  cfg.AckMode,
		})
		spec := supervisor.Spec{
			Name:        name,
			Command:     func() *exec.Cmd { c := exec.Command(r.exe, "jobqueue"); c.Env = env; return c },
			ReadyLine:   "listening ",
			HealthURL:   "http://" + pub + "/healthz",
			StopOrder:   1,
			StopTimeout: cfg.StopTimeout,
			PublicURL:   "http://" + pub,
			MetricsURL:  "http://" + adm + "/metrics",
		}
		if err := startWithin(ctx, r.sup, spec, cfg.StartTimeout); err != nil {
			return err
		}
		targets = append(targets, "http://"+pub)
	}

	var err error
	if r.gwAdmLn, r.gwAdm, err = r.socks.bind(ctx, "127.0.0.1:0"); err != nil {
		return err
	}
	gwDir := filepath.Join(data, "run", "gateway")
	if err := os.MkdirAll(gwDir, 0o700); err != nil {
		return fmt.Errorf("gateway dir: %w", err)
	}
	gwConfig := filepath.Join(gwDir, "gateway.yaml")
	if err := os.WriteFile(gwConfig, []byte(gatewayYAML(inheritedFD(0), inheritedFD(1), targets)), 0o600); err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	gwPublic := r.gwPubLn.Addr().String()
	if err := startWithin(ctx, r.sup, r.gatewaySpec(gwConfig), cfg.StartTimeout); err != nil {
		return err
	}
	if err := waitRouted(ctx, "http://"+gwPublic+"/v1/payloads", cfg.StartTimeout); err != nil {
		return fmt.Errorf("gateway on %s: %w", gwPublic, err)
	}
	// What a Prometheus needs to scrape the stack, then (--prometheus)
	// that Prometheus, started last so its first scrape finds everyone.
	promDir := filepath.Join(data, "run", promDirName)
	if err := writePromFiles(promDir, append([]supervisor.Status{r.self}, r.sup.Status()...), cfg.ScrapeInterval); err != nil {
		return err
	}
	if cfg.Prometheus != "" {
		addr, err := promAddr(r.socks, cfg.PrometheusListen)
		if err != nil {
			return err
		}
		if err := startWithin(ctx, r.sup, promSpec(cfg.Prometheus, promDir, filepath.Join(data, "prometheus"), addr, cfg.StopTimeout), cfg.StartTimeout); err != nil {
			return err
		}
	}
	printTable(r.Stdout, r.self, r.sup.Status())
	fmt.Fprintf(r.Stdout, "\ndata: %s  blobs: %s\npost-mortems: %s\nlogs: %s/<service>/{stdout,stderr}.log\ncurrent pids (after restarts): %s/<service>/pid, or GET http://%s/status\nprometheus: %s (targets: %s)\nstop: Ctrl-C or kill -TERM %d\n",
		data, blobURL, filepath.Join(data, "postmortem"), filepath.Join(data, "run"), filepath.Join(data, "run"), r.admLn.Addr(),
		filepath.Join(promDir, promConfigName), filepath.Join(promDir, promTargetsName), os.Getpid())
	if cfg.Upload != "" {
		fmt.Fprintf(r.Stdout, "post-mortems uploaded to: %s\n", upload.Redact(cfg.Upload))
	}
	r.Logger.Info("stack up", "listen", gwPublic, "data", data)
	return nil
}

// gatewaySpec is the supervised gateway: `wardgate gateway --config FILE`
// on the two sockets up holds (fd/3 public, fd/4 admin).
func (r *run) gatewaySpec(config string) supervisor.Spec {
	env := childEnv("gateway", map[string]string{telemetry.AdminTokenFileEnv: r.tokenFile})
	public, admin := r.gwPubLn.Addr().String(), r.gwAdmLn.Addr().String()
	pub, adm, exe := r.gwPub, r.gwAdm, r.exe
	return supervisor.Spec{
		Name: "gateway",
		Command: func() *exec.Cmd {
			c := exec.Command(exe, "gateway", "--config", config, "--listen", inheritedFD(0), "--admin", inheritedFD(1))
			c.Env, c.ExtraFiles = env, []*os.File{pub, adm}
			return c
		},
		HealthURL:   "http://" + localAddr(admin) + "/healthz",
		StopOrder:   0,
		StopTimeout: r.Config.StopTimeout,
		PublicURL:   "http://" + public,
		MetricsURL:  "http://" + admin + "/metrics",
	}
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
