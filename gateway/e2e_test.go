package gateway

// End-to-end tests: the real wardgate binary, built once, run against real
// backend servers on loopback, driven over HTTP and signals as a user would.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

// wardgateBin is cmd/wardgate, built once by TestMain.
var wardgateBin string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunMain(m, &wardgateBin, "wardgate-e2e-", "wardgate", testutil.WardgatePkg))
}

// gwProc is a running `wardgate gateway`.
type gwProc struct {
	cmd          *exec.Cmd
	cfgPath      string
	public       string // http://host:port
	admin        string
	logs         *syncBuffer
	exited       chan struct{}
	exitCode     int
	stderrClosed chan struct{}
}

// startGateway writes cfg to a file and runs the binary on it with free
// loopback ports, waiting for its "gateway listening" line.
func startGateway(t *testing.T, cfg string, extraArgs ...string) *gwProc {
	t.Helper()
	dir := t.TempDir()
	p := &gwProc{cfgPath: filepath.Join(dir, "gateway.yaml"), logs: &syncBuffer{}, exited: make(chan struct{}), stderrClosed: make(chan struct{})}
	if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"gateway", "--config", p.cfgPath, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, extraArgs...)
	p.cmd = exec.Command(wardgateBin, args...)
	p.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(p.stderrClosed)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			var m struct{ Msg, Listen, Admin string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "gateway listening" {
				p.public, p.admin = "http://"+m.Listen, "http://"+m.Admin
				close(ready)
			}
		}
	}()
	go func() {
		<-p.stderrClosed
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.exitCode = ee.ExitCode()
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", p.logs)
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("gateway exited with %d before listening:\n%s", p.exitCode, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway not listening after 30s:\n%s", p.logs)
	}
	return p
}

// writeConfig replaces the config file atomically, as editors do.
func (p *gwProc) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	tmp := p.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.cfgPath); err != nil {
		t.Fatal(err)
	}
}

func (p *gwProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.exitCode
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit within 30s")
		return -1
	}
}

func (p *gwProc) upstreams(t *testing.T) map[string]UpstreamStatus {
	t.Helper()
	_, body := get(t, p.admin+"/admin/upstreams")
	var st map[string]UpstreamStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("admin/upstreams: %v: %s", err, body)
	}
	return st
}

func hitsOf(bs ...*backend) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.hits.Swap(0)
	}
	return out
}

func TestE2EBalancers(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	var order strings.Builder
	var orderMu sync.Mutex
	release := make(chan struct{})
	mk := func(name string, delay time.Duration) *backend {
		return newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/wrr/") {
				orderMu.Lock()
				order.WriteString(name)
				orderMu.Unlock()
			}
			if strings.HasSuffix(r.URL.Path, "/hold") {
				<-release
			}
			time.Sleep(delay)
			io.WriteString(w, name)
		})
	}
	a, b, c := mk("a", 0), mk("b", 0), mk("c", 0)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	slow := mk("s", 30*time.Millisecond)
	targets := func(weights ...int) string {
		var sb strings.Builder
		for i, be := range []*backend{a, b, c} {
			fmt.Fprintf(&sb, "{url: %q, weight: %d},", be.URL, weights[i])
		}
		return "[" + strings.TrimSuffix(sb.String(), ",") + "]"
	}
	cfg := `
routes:
  - {path_prefix: /rr/, upstream: rr}
  - {path_prefix: /wrr/, upstream: wrr}
  - {path_prefix: /rand/, upstream: rand}
  - {path_prefix: /ch/, upstream: ch}
  - {path_prefix: /lc/, upstream: lc}
  - {path_prefix: /p2c/, upstream: p2c}
upstreams:
  rr: {balancer: round_robin, targets: ` + targets(5, 1, 1) + `}
  wrr: {balancer: weighted_round_robin, targets: ` + targets(5, 1, 1) + `}
  rand: {balancer: random, targets: ` + targets(5, 1, 1) + `}
  ch: {balancer: consistent_hash, hash_on: "header:X-User", targets: ` + targets(1, 1, 1) + `}
  lc: {balancer: least_conn, targets: ` + targets(1, 1, 1) + `}
  p2c: {balancer: p2c_ewma, targets: [{url: "` + a.URL + `"}, {url: "` + b.URL + `"}, {url: "` + slow.URL + `"}]}
`
	p := startGateway(t, cfg)
	all := []*backend{a, b, c}

	t.Run("round_robin ignores weights", func(t *testing.T) {
		hitsOf(all...)
		for range 9 {
			get(t, p.public+"/rr/x")
		}
		if h := hitsOf(all...); h[0] != 3 || h[1] != 3 || h[2] != 3 {
			t.Errorf("hits %v, want 3 3 3", h)
		}
	})
	t.Run("weighted_round_robin is smooth", func(t *testing.T) {
		orderMu.Lock()
		order.Reset()
		orderMu.Unlock()
		for range 14 {
			get(t, p.public+"/wrr/x")
		}
		orderMu.Lock()
		got := order.String()
		orderMu.Unlock()
		if got != "aabacaaaabacaa" {
			t.Errorf("order %q, want aabacaa twice", got)
		}
	})
	t.Run("random is uniform", func(t *testing.T) {
		hitsOf(all...)
		for range 300 {
			get(t, p.public+"/rand/x")
		}
		h := hitsOf(all...)
		for i, n := range h {
			// Expected 100 each; below 50 is a ~1e-8 event for a uniform draw.
			if n < 50 {
				t.Errorf("target %d got %d of 300 (hits %v): not uniform or weighted", i, n, h)
			}
		}
	})
	t.Run("consistent_hash is sticky", func(t *testing.T) {
		owner := map[string]string{}
		for i := range 30 {
			user := fmt.Sprintf("user-%d", i)
			_, body := get(t, p.public+"/ch/x", "X-User", user)
			owner[user] = body
			for range 2 {
				if _, again := get(t, p.public+"/ch/x", "X-User", user); again != body {
					t.Fatalf("%s went to %s then %s", user, body, again)
				}
			}
		}
		if n := len(distinct(owner)); n < 2 {
			t.Fatalf("30 keys all on %d target", n)
		}
	})
	t.Run("least_conn avoids busy targets", func(t *testing.T) {
		busy := func() (n int64, idle string) {
			for _, ts := range p.upstreams(t)["lc"].Targets {
				n += ts.Inflight
				if ts.Inflight == 0 {
					idle = ts.URL
				}
			}
			return n, idle
		}
		done := make(chan struct{}, 2)
		for i := range 2 {
			go func() {
				if resp, err := http.Get(p.public + "/lc/hold"); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				done <- struct{}{}
			}()
			waitFor(t, "held requests", func() bool { n, _ := busy(); return n == int64(i+1) })
		}
		_, idle := busy()
		want := map[string]string{a.URL: "a", b.URL: "b", c.URL: "c"}[idle]
		for range 5 {
			if _, body := get(t, p.public+"/lc/x"); body != want {
				t.Errorf("request went to %s while %s is the only idle target", body, want)
			}
		}
		unblock()
		<-done
		<-done
	})
	t.Run("p2c_ewma avoids the slow target", func(t *testing.T) {
		hitsOf(a, b, slow)
		for range 60 {
			get(t, p.public+"/p2c/x")
		}
		h := hitsOf(a, b, slow)
		if h[2] >= h[0] || h[2] >= h[1] {
			t.Errorf("hits fast %d %d, slow %d: the slow target should get the fewest", h[0], h[1], h[2])
		}
	})
}

func distinct(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

// restartableBackend is a backend whose listener can be closed and
// reopened on the same address.
type restartableBackend struct {
	name string
	addr string
	srv  *http.Server
	hits atomic.Int64
}

func newRestartable(t *testing.T, name string) *restartableBackend {
	t.Helper()
	rb := &restartableBackend{name: name}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb.addr = l.Addr().String()
	rb.serve(l)
	t.Cleanup(rb.stop)
	return rb
}

func (rb *restartableBackend) URL() string { return "http://" + rb.addr }

func (rb *restartableBackend) serve(l net.Listener) {
	rb.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			rb.hits.Add(1)
		}
		io.WriteString(w, rb.name)
	})}
	go rb.srv.Serve(l)
}

func (rb *restartableBackend) stop() { rb.srv.Close() }

func (rb *restartableBackend) start(t *testing.T) {
	t.Helper()
	var l net.Listener
	var err error
	waitFor(t, "rebind "+rb.addr, func() bool {
		l, err = net.Listen("tcp", rb.addr)
		return err == nil
	})
	rb.serve(l)
}

func TestE2EFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	a, b := newRestartable(t, "a"), newRestartable(t, "b")
	cfg := `
routes: [{path_prefix: /, upstream: u}]
upstreams:
  u:
    targets: [{url: "` + a.URL() + `"}, {url: "` + b.URL() + `"}]
    health_check: {path: /healthz, interval: 100ms, timeout: 1s, fall: 2, rise: 1}
    retries: 1
    # Passive ejection would (rightly) keep b out for eject_for after the
    # refused connections below; this test is about the active checks.
    passive: {fail_threshold: 0}
`
	p := startGateway(t, cfg)
	healthy := func(url string) bool {
		for _, ts := range p.upstreams(t)["u"].Targets {
			if ts.URL == url {
				return ts.Healthy
			}
		}
		return false
	}
	for range 4 {
		get(t, p.public+"/x")
	}
	if a.hits.Load() == 0 || b.hits.Load() == 0 {
		t.Fatalf("both targets should serve: a=%d b=%d", a.hits.Load(), b.hits.Load())
	}

	b.stop()
	// While the health check has not noticed yet, GETs are retried on a.
	for i := range 10 {
		if resp, body := get(t, p.public+"/x"); resp.StatusCode != 200 || body != "a" {
			t.Fatalf("request %d after killing b: %d %q", i, resp.StatusCode, body)
		}
	}
	waitFor(t, "b marked down", func() bool { return !healthy(b.URL()) })
	b.hits.Store(0)
	for range 10 {
		if resp, body := get(t, p.public+"/x"); resp.StatusCode != 200 || body != "a" {
			t.Fatalf("survivor should take everything: %d %q", resp.StatusCode, body)
		}
	}

	b.start(t)
	waitFor(t, "b back in rotation", func() bool { return healthy(b.URL()) })
	for range 6 {
		get(t, p.public+"/x")
	}
	if b.hits.Load() == 0 {
		t.Errorf("revived target got no traffic")
	}

	a.stop()
	b.stop()
	waitFor(t, "all down", func() bool { return !healthy(a.URL()) && !healthy(b.URL()) })
	resp, body := get(t, p.public+"/x")
	if resp.StatusCode != 503 {
		t.Fatalf("all targets down: status %d, want 503", resp.StatusCode)
	}
	if e := decodeErr(t, body); e.Error != "no healthy target" || e.Upstream != "u" || len(e.TraceID) != 32 {
		t.Errorf("503 body %q", body)
	}
	if !strings.Contains(p.logs.String(), `"msg":"target marked down by health check"`) {
		t.Errorf("no health-check log line")
	}
}

func TestE2EErrorsAndSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	good := newBackend(t, "good", nil)
	var resets atomic.Int64
	resetter := newBackend(t, "reset", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		resets.Add(1)
		panic(http.ErrAbortHandler) // the connection drops after the request arrived
	})
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	})
	var xff, hop atomic.Value
	echo := newBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		xff.Store(r.Header.Get("X-Forwarded-For"))
		hop.Store(r.Header.Get("Connection"))
	})
	dead := deadURL(t)
	cfg := `
middleware: {bodylimit: {max_bytes: 1024}}
routes:
  - {path_prefix: /retry/, upstream: retry}
  - {path_prefix: /post/, upstream: post}
  - {path_prefix: /slow/, upstream: slow}
  - {path_prefix: /echo/, upstream: echo, middleware: [bodylimit]}
upstreams:
  retry: {retries: 1, passive: {fail_threshold: 0}, targets: [{url: "` + dead + `"}, {url: "` + good.URL + `"}]}
  post: {retries: 1, passive: {fail_threshold: 0}, targets: [{url: "` + resetter.URL + `"}, {url: "` + good.URL + `"}]}
  slow: {retries: 0, timeouts: {response_header: 300ms}, targets: [{url: "` + slow.URL + `"}]}
  echo: {targets: [{url: "` + echo.URL + `"}]}
`
	p := startGateway(t, cfg)

	t.Run("GET retried on another target", func(t *testing.T) {
		for i := range 4 {
			if resp, body := get(t, p.public+"/retry/x"); resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "good" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		_, metrics := get(t, p.admin+"/metrics")
		if !strings.Contains(metrics, `wardgate_upstream_retries_total{`) {
			t.Errorf("no retries metric")
		}
	})
	t.Run("POST not retried once it reached the upstream", func(t *testing.T) {
		good.hits.Store(0)
		var saw502 bool
		for range 2 { // round robin: one of two starts on the resetter
			req, _ := http.NewRequest(http.MethodPost, p.public+"/post/x", strings.NewReader(`{"a":1}`))
			resp, _ := do(t, req)
			if resp.StatusCode == 502 {
				saw502 = true
			}
		}
		if !saw502 || resets.Load() != 1 || good.hits.Load() != 1 {
			t.Errorf("saw502=%v resets=%d good=%d: the POST that reached the resetter must fail with 502, not be replayed", saw502, resets.Load(), good.hits.Load())
		}
	})
	t.Run("slow upstream is 504", func(t *testing.T) {
		resp, body := get(t, p.public+"/slow/x")
		if resp.StatusCode != 504 || decodeErr(t, body).Upstream != "slow" {
			t.Errorf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("client that disconnects is 499 in the access log", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.public+"/slow/gone", nil)
		go func() {
			waitFor(t, "slow request in flight", func() bool { return p.upstreams(t)["slow"].Targets[0].Inflight == 1 })
			cancel()
		}()
		if _, err := http.DefaultClient.Do(req); err == nil {
			t.Fatal("request should have been canceled")
		}
		waitFor(t, "499 access log", func() bool {
			for _, l := range p.logs.lines("http request") {
				if l["path"] == "/slow/gone" {
					return l["status"] == float64(499)
				}
			}
			return false
		})
		if st := p.upstreams(t)["slow"].Targets[0]; st.Ejected {
			t.Errorf("a client disconnect ejected the target")
		}
		for _, l := range p.logs.lines("upstream attempt failed") {
			if l["path"] == "/slow/gone" {
				t.Errorf("client disconnect logged as an upstream failure: %v", l)
			}
		}
	})
	t.Run("oversized body is 413", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, p.public+"/echo/x", strings.NewReader(strings.Repeat("x", 4096)))
		if resp, body := do(t, req); resp.StatusCode != 413 {
			t.Errorf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("Connection: X-Forwarded-For cannot strip the gateway's header", func(t *testing.T) {
		resp, _ := get(t, p.public+"/echo/x", "Connection", "close, X-Forwarded-For", "X-Forwarded-For", "6.6.6.6")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := xff.Load(); got != "127.0.0.1" {
			t.Errorf("upstream X-Forwarded-For = %q, want 127.0.0.1 (set by the gateway)", got)
		}
		if got := hop.Load(); got != "" {
			t.Errorf("upstream Connection = %q", got)
		}
	})
	t.Run("admin pages are not on the public listener", func(t *testing.T) {
		for _, path := range []string{"/admin/upstreams", "/metrics", "/debug/pprof/", "/debug/pprof/goroutine", "/healthz"} {
			if resp, body := get(t, p.public+path); resp.StatusCode != 404 {
				t.Errorf("public %s: %d %q", path, resp.StatusCode, body)
			}
			if path == "/debug/pprof/goroutine" {
				continue
			}
			if resp, _ := get(t, p.admin+path); resp.StatusCode != 200 {
				t.Errorf("admin %s: %d", path, resp.StatusCode)
			}
		}
	})
	t.Run("SIGTERM exits 0", func(t *testing.T) {
		if err := testutil.Terminate(p.cmd.Process, p.exited, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if p.exitCode != 0 {
			t.Errorf("exit code %d after SIGTERM", p.exitCode)
		}
	})
}

func TestE2EReload(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	release := make(chan struct{})
	a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/long" {
			<-release
		}
		io.WriteString(w, "a")
	})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the backend's Close, which waits for handlers
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") })
	cfgFor := func(url string) string {
		return "routes: [{path_prefix: /v1/, upstream: u}]\nupstreams:\n  u:\n    targets: [{url: \"" + url + "\"}]\n"
	}
	p := startGateway(t, cfgFor(a.URL))
	if _, body := get(t, p.public+"/v1/x"); body != "a" {
		t.Fatalf("body %q", body)
	}

	long := make(chan string, 1)
	go func() {
		resp, err := http.Get(p.public + "/v1/long")
		if err != nil {
			long <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		long <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	waitFor(t, "long request in flight", func() bool { return p.upstreams(t)["u"].Targets[0].Inflight == 1 })

	// A broken file: one log line naming the field; the old config serves.
	p.writeConfig(t, strings.Replace(cfgFor(b.URL), "upstream: u", "upstream: missing", 1))
	waitFor(t, "refusal log line", func() bool { return len(p.logs.lines("config reload refused; previous config still serving")) > 0 })
	if _, body := get(t, p.public+"/v1/x"); body != "a" {
		t.Errorf("after a broken file the old config must serve: got %q", body)
	}
	// A SIGHUP re-reads the same broken file: one more line, nothing else.
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "second refusal", func() bool { return len(p.logs.lines("config reload refused; previous config still serving")) == 2 })
	refusals := p.logs.lines("config reload refused; previous config still serving")
	if errMsg, _ := refusals[0]["error"].(string); !strings.Contains(errMsg, `routes[0].upstream: unknown upstream "missing"`) {
		t.Errorf("refusal does not name the field: %v", refusals[0])
	}

	// A valid change on disk applies (file watch) ...
	p.writeConfig(t, cfgFor(b.URL))
	waitFor(t, "new routing", func() bool {
		_, body := get(t, p.public+"/v1/x")
		return body == "b"
	})
	// ... and a change applied by SIGHUP too (fsnotify may be slower: either
	// trigger is fine, the routing must end up on a).
	if err := os.WriteFile(p.cfgPath, []byte(cfgFor(a.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "routing back to a", func() bool {
		_, body := get(t, p.public+"/v1/x")
		return body == "a"
	})
	if n := len(p.logs.lines("config reload refused; previous config still serving")); n != 2 {
		t.Errorf("%d refusal lines, want 2 (one per attempt)", n)
	}

	_, metrics := get(t, p.admin+"/metrics")
	for _, want := range []string{`wardgate_gateway_reloads_total{`, `result="ok"`, `result="error"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// SIGTERM while the long request (started on the first config) is in
	// flight: the gateway stops accepting, lets it finish, exits 0.
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "shutdown started", func() bool { return len(p.logs.lines("gateway shutting down")) == 1 })
	select {
	case <-p.exited:
		t.Fatal("gateway exited with a request in flight")
	default:
	}
	unblock()
	select {
	case got := <-long:
		if got != "200 a" {
			t.Errorf("long in-flight request: %q", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long request did not finish")
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}

func TestE2EInvalidConfigAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	bin := wardgateBin
	dir := t.TempDir()
	cases := map[string]string{
		"weight":   "routes: [{path_prefix: /, upstream: u}]\nupstreams: {u: {targets: [{url: 'http://127.0.0.1:1', weight: 0}]}}\n",
		"balancer": "routes: [{path_prefix: /, upstream: u}]\nupstreams: {u: {balancer: nope, targets: [{url: 'http://127.0.0.1:1'}]}}\n",
		"url":      "routes: [{path_prefix: /, upstream: u}]\nupstreams: {u: {targets: [{url: 'localhost:1'}]}}\n",
		"route":    "routes: [{path_prefix: /, upstream: x}]\nupstreams: {u: {targets: [{url: 'http://127.0.0.1:1'}]}}\n",
	}
	wants := map[string]string{
		"weight":   "upstreams.u.targets[0].weight: must be >= 1",
		"balancer": `upstreams.u.balancer: unknown balancer "nope"`,
		"url":      "upstreams.u.targets[0].url: bad URL",
		"route":    `routes[0].upstream: unknown upstream "x"`,
	}
	for name, cfg := range cases {
		path := filepath.Join(dir, name+".yaml")
		os.WriteFile(path, []byte(cfg), 0o600)
		cmd := exec.Command(bin, "gateway", "--config", path)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%s: err %v, want exit code 2", name, err)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], wants[name]) {
			t.Errorf("%s: stderr %q, want one line containing %q", name, stderr.String(), wants[name])
		}
	}
	// --help explains the flags and exits 0.
	out, err := exec.Command(bin, "gateway", "--help").Output()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--config", "-listen", "-admin", "docs/gateway.md", "SIGHUP"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}
