package dashboards

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wardgate/wardgate/internal/testutil"
)

// rateInterval is what $__rate_interval becomes in the end-to-end test:
// wide enough that the incidents the test provokes mid-load (a killed job
// queue, a reload, a blob store outage) are still inside the window when
// the queries run right after the load.
const rateInterval = "30s"

// TestPanelsReturnDataFromRealPrometheus is the dashboards' contract,
// along the path docs/dashboards.md gives a user: it runs `wardgate up
// --prometheus`, so up's own supervised Prometheus scrapes every admin
// listener (up's included) every second from the prometheus.yml and file_sd
// targets up generated. A fleet is what the boards are for, so a second
// gateway runs next to up's, registered in the same file_sd file (as a
// second pod would be found by kubernetes_sd): it takes its targets from
// DNS (discover: SRV records of up's job queues, served by an in-process
// DNS server), so every service has two instances and the discovery
// panels have data. First, on the freshly started, healthy stack with
// a little valid traffic through both gateways, every query of every panel
// must return a series (no "No data" for a newcomer: counters of things
// that have not happened yet, such as retries or reloads, are at 0). Then
// it drives load through both gateways (valid collections, bad JSON, wrong
// content type, oversized bodies, a killed job queue, a config reload, a
// blob store outage, a DNS outage, a job queue sent SIGQUIT so a real
// post-mortem is written and analyzed) and runs every query again. A
// query without a series fails, naming the phase, the dashboard and the
// panel; so does a "by instance" panel that does not show both instances,
// and a gateway-board query that has no series with the Instance variable
// set to one gateway (one pod selected).
func TestPanelsReturnDataFromRealPrometheus(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatalf("prometheus not found (scripts/install-test-deps.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()

	bin := buildWardgate(t, ctx, dir)
	stack := startUp(t, ctx, bin, filepath.Join(dir, "data"), "--prometheus", "--scrape-interval", "1s")
	if stack.prometheus.public == "" {
		t.Fatalf("up --prometheus printed no prometheus row with a URL\n%s", stack.logTail())
	}
	prom := &promServer{base: stack.prometheus.public}
	startDNSGateway(t, bin, dir, stack)
	waitFor(t, ctx, "up's Prometheus ready", func() bool {
		resp, err := http.Get(prom.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// Every admin listener must be scraped before the load starts, so
	// counters have a starting sample to take rates from.
	waitFor(t, ctx, "Prometheus scraping every wardgate process", func() bool {
		res, err := prom.query(ctx, `up{job=~"wardgate-.*"} == 1`)
		return err == nil && len(res) == 3+len(stack.jobqueues)
	})
	// The discovering gateway's health checks must have found both job
	// queues before its traffic starts.
	waitFor(t, ctx, "the DNS-discovering gateway seeing every job queue healthy", func() bool {
		res, err := prom.query(ctx, `sum(wardgate_upstream_healthy{instance="`+dnsGatewayInstance+`"}) == `+fmt.Sprint(len(stack.jobqueues)))
		return err == nil && len(res) == 1
	})

	// A healthy stack as a newcomer first sees it: a few valid requests,
	// nothing gone wrong.
	runHealthyLoad(t, ctx, stack, 6*time.Second)
	time.Sleep(2500 * time.Millisecond) // a couple of scrapes after the load
	n := checkEveryPanel(t, ctx, prom, "healthy stack", nil)
	t.Logf("healthy stack: %d panel queries checked", n)
	if t.Failed() {
		t.Logf("up stderr (last lines):\n%s", stack.logTail())
		return
	}

	runLoad(t, ctx, stack, 18*time.Second)
	// The SIGQUIT's post-mortem is analyzed (delve) in the background;
	// its counter and analysis time must have been scraped.
	waitFor(t, ctx, "the post-mortem of the SIGQUIT analyzed and scraped", func() bool {
		res, err := prom.query(ctx, `wardgate_postmortems_total{job="wardgate-up",result="analyzed"} >= 1`)
		return err == nil && len(res) == 1
	})
	// Let a couple of scrapes see the last of the load.
	time.Sleep(2500 * time.Millisecond)

	n = checkEveryPanel(t, ctx, prom, "after incidents", nil)
	t.Logf("after incidents: %d panel queries checked", n)
	// The DNS outage of the load was seen, counted and scraped.
	if res, err := prom.query(ctx, `wardgate_discovery_errors_total{instance="`+dnsGatewayInstance+`",reason="servfail"} > 0`); err != nil || len(res) != 1 {
		t.Errorf("no servfail discovery error scraped from %s after the DNS outage (%v)", dnsGatewayInstance, err)
	}
	// One pod selected: every gateway-board query still has data for the
	// discovering gateway alone.
	n = checkEveryPanel(t, ctx, prom, "instance="+dnsGatewayInstance, map[string]string{"instance": dnsGatewayInstance})
	t.Logf("one gateway selected: %d panel queries checked", n)
	if t.Failed() {
		t.Logf("up stderr (last lines):\n%s", stack.logTail())
	}
}

// checkEveryPanel runs every query of every panel of the four boards with
// the variables at their defaults, failing for each one without a series,
// and for each query of a panel titled "... by instance" that shows fewer
// than two instances (the fleet is two of each), and returns how many it
// ran. With set (a variable's value, e.g. one instance), only the gateway
// board is checked, with those variables set, as a user who picks one pod.
func checkEveryPanel(t *testing.T, ctx context.Context, prom *promServer, phase string, set map[string]string) int {
	t.Helper()
	checked := 0
	boards := loadBoards(t)
	names := []string{"gateway.json", "jobqueue.json", "go-runtime.json", "diagnostics.json"}
	if set != nil {
		names = names[:1]
	}
	for _, name := range names {
		b := boards[name]
		vars := boardVars(b)
		maps.Copy(vars, set)
		for _, p := range b.panels() {
			for _, tg := range p.Targets {
				expr := substitute(tg.Expr, vars, rateInterval)
				res, err := prom.query(ctx, expr)
				switch {
				case err != nil:
					t.Errorf("%s: %s / panel %q / query %s: %v\n  %s", phase, name, p.Title, tg.RefID, err, expr)
				case len(res) == 0:
					t.Errorf("%s: %s / panel %q / query %s: no series\n  %s", phase, name, p.Title, tg.RefID, expr)
				case set == nil && strings.HasSuffix(p.Title, " by instance") && len(res) < 2:
					t.Errorf("%s: %s / panel %q / query %s: %d series, want one per instance (2 or more)\n  %s", phase, name, p.Title, tg.RefID, len(res), expr)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Errorf("%s: no panel query found in the boards", phase)
	}
	return checked
}

// runHealthyLoad posts valid collections through the gateway for d,
// paced. On a healthy stack they are accepted; a slow shared machine may
// still see the odd 503 (a health check timed out), which is logged, not
// failed: the point is what the boards show without incidents provoked.
func runHealthyLoad(t *testing.T, ctx context.Context, stack *upStack, d time.Duration) {
	t.Helper()
	gateways := stack.gatewayURLs()
	valid := []byte(`{"version":"10.0.19045","data":[{"kind":"ping","n":1},{"n":2}]}`)
	client := &http.Client{Timeout: 10 * time.Second}
	end := time.Now().Add(d)
	accepted, other := map[string]int{}, map[string]int{}
	for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
		gw := gateways[i%len(gateways)]
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/payloads", bytes.NewReader(valid))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		switch {
		case err != nil:
			other[err.Error()]++
		case resp.StatusCode == http.StatusAccepted:
			accepted[gw]++
		default:
			other[resp.Status]++
		}
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("healthy load: collections accepted per gateway %v, other answers %v", accepted, other)
	for _, gw := range gateways {
		if accepted[gw] == 0 {
			t.Fatalf("healthy stack: no collection accepted through the gateway %s (%v)\n%s", gw, other, stack.logTail())
		}
	}
}

// buildWardgate builds the binary the way users run it (no -race: the
// test measures the product, not the race detector).
func buildWardgate(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	bin, err := testutil.Build(ctx, dir, "wardgate", testutil.WardgatePkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// process is one row of the table `wardgate up` prints.
type process struct {
	service string
	pid     int
	public  string // http://127.0.0.1:PORT
	metrics string // http://127.0.0.1:PORT/metrics
}

// scrapeTarget is the host:port Prometheus scrapes.
func (p process) scrapeTarget(t testing.TB) string {
	u, err := url.Parse(p.metrics)
	if err != nil || u.Path != "/metrics" {
		t.Fatalf("%s: metrics URL %q is not http://HOST:PORT/metrics", p.service, p.metrics)
	}
	return u.Host
}

type upStack struct {
	data       string
	up         process // wardgate up itself: the supervisor's metrics
	prometheus process // up --prometheus: the Prometheus up runs
	gateway    process
	jobqueues  []process
	// dnsGateway is the second gateway of the fleet, started by the test
	// beside up's (startDNSGateway), and dns the server it resolves.
	dnsGateway process
	dns        *testutil.DNSServer
	mu         sync.Mutex
	log        []string
}

// gatewayURLs are the public base URLs of the fleet's gateways.
func (s *upStack) gatewayURLs() []string {
	urls := []string{s.gateway.public}
	if s.dnsGateway.public != "" {
		urls = append(urls, s.dnsGateway.public)
	}
	return urls
}

func (s *upStack) logTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	from := max(0, len(s.log)-200)
	return strings.Join(s.log[from:], "\n")
}

// startUp runs `wardgate up` and reads the gateway and job-queue rows of
// the table it prints once everything answers. Every port is up's pick
// (--listen port 0): up binds them all itself and hands them to its
// children, so no other test process can take one in between.
func startUp(t *testing.T, ctx context.Context, bin, data string, args ...string) *upStack {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"up", "--data", data, "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("wardgate up: %v", err)
	}
	stack := &upStack{data: data}
	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"msg":"http request"`) {
				continue // access log: too many lines to be useful here
			}
			stack.mu.Lock()
			stack.log = append(stack.log, sc.Text())
			stack.mu.Unlock()
		}
	}()
	// The reader sends the whole table once, at the line that ends it.
	table := make(chan []process, 1)
	go func() {
		if rows, err := testutil.ReadUpTable(bufio.NewScanner(stdout)); err == nil {
			var ps []process
			for _, r := range rows {
				ps = append(ps, process{service: r.Service, pid: r.PID, public: r.Public, metrics: r.Metrics})
			}
			table <- ps
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	// exited is closed once up has exited, with waitErr set: a channel that
	// every waiter can read (the cleanup must not wait for a value the
	// select below already took when up exited early).
	exited := make(chan struct{})
	var waitErr error
	early := false // up exited before its table: reported there
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if waitErr != nil && !early {
				t.Errorf("wardgate up did not stop cleanly: %v\n%s", waitErr, stack.logTail())
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("wardgate up did not stop within 60s of SIGTERM")
		}
		drained.Wait()
	})

	select {
	case rows := <-table:
		for _, p := range rows {
			switch {
			case p.service == "up":
				stack.up = p
			case p.service == "gateway":
				stack.gateway = p
			case p.service == "prometheus":
				stack.prometheus = p
			case strings.HasPrefix(p.service, "jobqueue"):
				stack.jobqueues = append(stack.jobqueues, p)
			}
		}
	case <-exited:
		early = true
		logged := make(chan struct{}) // the whole log, to say why
		go func() { drained.Wait(); close(logged) }()
		select {
		case <-logged:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("wardgate up exited before printing its table: %v\n%s", waitErr, stack.logTail())
	case <-time.After(90 * time.Second):
		t.Fatalf("wardgate up printed no table within 90s\n%s", stack.logTail())
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if stack.up.pid == 0 || stack.gateway.pid == 0 || len(stack.jobqueues) < 2 {
		t.Fatalf("up table has up %+v, gateway %+v and %d job queues, want up, a gateway and at least 2", stack.up, stack.gateway, len(stack.jobqueues))
	}
	return stack
}

// promServer is the Prometheus `up --prometheus` runs.
type promServer struct{ base string }

// query runs an instant query and returns its series (or the scalar as
// one sample).
func (p *promServer) query(ctx context.Context, expr string) ([]json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/api/v1/query",
		strings.NewReader(url.Values{"query": {expr}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode answer (HTTP %d): %w", resp.StatusCode, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s", body.Error)
	}
	if body.Data.ResultType == "scalar" {
		return []json.RawMessage{body.Data.Result}, nil
	}
	var series []json.RawMessage
	if err := json.Unmarshal(body.Data.Result, &series); err != nil {
		return nil, fmt.Errorf("decode %s result: %w", body.Data.ResultType, err)
	}
	return series, nil
}

// runLoad posts through both gateways for d and provokes, part-way, what
// the incident panels show: a job queue killed (up restarts it), a config
// reload that adds a target nothing listens on (connection refused: the
// gateway retries on another target, ejects it, and its health check
// marks it down), a blob store outage (the blob directory replaced by
// a file, so PUTs fail and are retried) and at the same time a DNS
// outage (SERVFAIL: the discovering gateway keeps its last good targets
// and counts the errors), and a crash of the other job queue (SIGQUIT: a
// core, which up turns into an analyzed post-mortem).
func runLoad(t *testing.T, ctx context.Context, stack *upStack, d time.Duration) {
	t.Helper()
	gateways := stack.gatewayURLs()
	valid := []byte(`{"version":"10.0.19045","data":[{"kind":"ping","n":1},{"n":2},{"n":3}]}`)
	oversized := append(append([]byte(`{"version":"1","data":[{"blob":"`), bytes.Repeat([]byte("x"), 1<<20+1024)...), []byte(`"}]}`)...)
	client := &http.Client{Timeout: 10 * time.Second}
	loadCtx, stop := context.WithTimeout(ctx, d)
	defer stop()

	var sent, ok atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				method, body, ct := http.MethodPost, valid, "application/json"
				switch n := i*4 + w; {
				case n%97 == 0:
					body = oversized
				case n%23 == 0:
					body = []byte(`{"version":"1","data":`)
				case n%29 == 0:
					ct = "text/plain"
				case n%31 == 0:
					method, body = http.MethodGet, nil
				}
				target := gateways[(i+w)%len(gateways)] + "/v1/payloads"
				req, err := http.NewRequestWithContext(loadCtx, method, target, bytes.NewReader(body))
				if err != nil {
					return
				}
				if body != nil {
					req.Header.Set("Content-Type", ct)
				}
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					ok.Add(1)
				}
				// Pace each client so four of them leave CPU to the
				// stack on a small shared machine.
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}

	blobs := filepath.Join(stack.data, "blobs")
	step := func(after time.Duration, what string, f func() error) {
		select {
		case <-loadCtx.Done():
			t.Errorf("load ended before %s", what)
			return
		case <-time.After(after):
		}
		if err := f(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	step(d/4, "killing jobqueue-1", func() error {
		return syscall.Kill(stack.jobqueues[0].pid, syscall.SIGKILL)
	})
	step(d/8, "adding a dead target to the gateway config", func() error {
		return addDeadTarget(stack, testutil.FreePort(t))
	})
	step(d/8, "taking the blob store away", func() error {
		if err := os.Rename(blobs, blobs+".away"); err != nil {
			return err
		}
		return os.WriteFile(blobs, []byte("not a directory: PUTs fail until the test puts the store back\n"), 0o600)
	})
	step(0, "failing DNS for the discovering gateway (SERVFAIL)", func() error {
		stack.dns.Fail(dns.RcodeServerFailure)
		return nil
	})
	step(3*time.Second, "bringing the blob store and DNS back", func() error {
		if err := stack.setJobqueueRecords(); err != nil {
			return err
		}
		if err := os.Remove(blobs); err != nil {
			return err
		}
		return os.Rename(blobs+".away", blobs)
	})
	step(time.Second, "crashing jobqueue-2 (SIGQUIT)", func() error {
		return syscall.Kill(stack.jobqueues[1].pid, syscall.SIGQUIT)
	})
	<-loadCtx.Done()
	wg.Wait()
	t.Logf("load: %d requests, %d accepted", sent.Load(), ok.Load())
	if ok.Load() == 0 {
		t.Fatalf("no request was accepted through the gateway\n%s", stack.logTail())
	}
}

// addDeadTarget rewrites the config `up` generated for the gateway with
// one more target on a port nothing listens on, and sends SIGHUP (the
// gateway also reloads on the file change; two reloads are fine).
func addDeadTarget(stack *upStack, port int) error {
	file := filepath.Join(stack.data, "run", "gateway", "gateway.yaml")
	cfg, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	const anchor = "    targets:\n"
	if !bytes.Contains(cfg, []byte(anchor)) {
		return fmt.Errorf("%s has no %q line to add a target under:\n%s", file, anchor, cfg)
	}
	dead := fmt.Sprintf("      - {url: \"http://127.0.0.1:%d\", weight: 1}\n", port)
	cfg = bytes.Replace(cfg, []byte(anchor), []byte(anchor+dead), 1)
	tmp := file + ".new"
	if err := os.WriteFile(tmp, cfg, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	return syscall.Kill(stack.gateway.pid, syscall.SIGHUP)
}

// waitFor polls cond every 200ms until it holds, failing after a generous
// deadline (the machine is shared and slow).
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(ctx, t, 60*time.Second, 200*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}

// dnsGatewayInstance is the instance label of the second gateway in the
// file_sd targets, as a pod name would be in a cluster.
const dnsGatewayInstance = "gateway-dns"

// jobqueueSRV is the name the second gateway discovers, as it would the
// named port of a headless Service.
const jobqueueSRV = "_http._tcp.jobqueue.wardgate.test."

// setJobqueueRecords makes the DNS server answer jobqueueSRV with every
// job queue of the stack (their ports survive restarts: up holds them).
func (s *upStack) setJobqueueRecords() error {
	var urls []string
	for _, jq := range s.jobqueues {
		urls = append(urls, jq.public)
	}
	lines, err := testutil.SRVLines(jobqueueSRV, 1, urls...)
	if err != nil {
		return err
	}
	return s.dns.Set(lines...)
}

// startDNSGateway starts the fleet's second gateway: `wardgate gateway`
// with the route of up's gateway, its upstream discovered from the SRV
// records of an in-process DNS server (re-resolved every second) instead
// of a list, and adds it to the file_sd targets up wrote for its
// Prometheus (job wardgate-gateway, instance gateway-dns). up writes that
// file only when it starts, so the entry stays.
func startDNSGateway(t *testing.T, bin, dir string, stack *upStack) {
	t.Helper()
	stack.dns = testutil.StartDNS(t)
	if err := stack.setJobqueueRecords(); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`routes:
  - path_prefix: /v1/
    upstream: jobqueue
upstreams:
  jobqueue:
    balancer: round_robin
    discover: {name: %q, type: srv, interval: 1s, timeout: 500ms, resolver: %q}
    health_check: {path: /healthz, interval: 1s, timeout: 500ms, fall: 2, rise: 1}
    passive: {fail_threshold: 3, window: 10s, eject_for: 5s}
    retries: 1
    timeouts: {dial: 1s, response_header: 30s}
`, jobqueueSRV, stack.dns.Addr)
	file := filepath.Join(dir, "gateway-dns.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "gateway", "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	p := testutil.StartGateway(t, cmd, 30*time.Second)
	stack.dnsGateway = process{service: dnsGatewayInstance, pid: cmd.Process.Pid, public: p.Public, metrics: p.Admin + "/metrics"}

	targets := filepath.Join(stack.data, "run", "prometheus", "targets.json")
	b, err := os.ReadFile(targets)
	if err != nil {
		t.Fatal(err)
	}
	var groups []map[string]any
	if err := json.Unmarshal(b, &groups); err != nil {
		t.Fatalf("%s: %v", targets, err)
	}
	groups = append(groups, map[string]any{
		"targets": []string{stack.dnsGateway.scrapeTarget(t)},
		"labels":  map[string]string{"job": "wardgate-gateway", "service": dnsGatewayInstance, "instance": dnsGatewayInstance},
	})
	if b, err = json.MarshalIndent(groups, "", "  "); err != nil {
		t.Fatal(err)
	}
	// Atomically: Prometheus watches the file.
	if err := os.WriteFile(targets+".new", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(targets+".new", targets); err != nil {
		t.Fatal(err)
	}
}
