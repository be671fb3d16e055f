package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/telemetry"
)

// syncBuffer is a goroutine-safe log sink that can pick out JSON records.
type syncBuffer struct{ testutil.SyncBuffer }

// lines returns the JSON log records whose msg is msg.
func (s *syncBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type fixture struct {
	g      *Gateway
	tel    *telemetry.Telemetry
	public *httptest.Server
	admin  *httptest.Server
	logs   *syncBuffer
}

// newFixture runs a gateway for cfgYAML on real loopback listeners.
func newFixture(t *testing.T, cfgYAML string) *fixture {
	t.Helper()
	cfg, err := Parse([]byte(cfgYAML))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, cfgYAML)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tel, err := telemetry.Setup(ctx, "gateway-test")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := telemetry.NewLogger(logs, "gateway-test", slog.LevelDebug)
	g, err := New(ctx, cfg, tel, logger)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{g: g, tel: tel, logs: logs}
	f.public = httptest.NewServer(g)
	f.admin = httptest.NewServer(g.AdminHandler(""))
	t.Cleanup(func() {
		f.public.Close()
		f.admin.Close()
		g.Close()
		_ = tel.Shutdown(context.Background())
	})
	return f
}

// backend is a real HTTP server that names itself in X-Backend and
// counts its hits.
type backend struct {
	*httptest.Server
	name string
	hits atomic.Int64
}

func newBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(b.Close)
	return b
}

// deadURL returns a loopback URL nobody listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	return "http://" + testutil.FreeAddr(t)
}

func oneUpstream(extraRoute, extraUpstream string, urls ...string) string {
	var b strings.Builder
	b.WriteString("routes:\n  - path_prefix: /\n    upstream: u\n")
	b.WriteString(extraRoute)
	b.WriteString("upstreams:\n  u:\n    targets:\n")
	for _, u := range urls {
		fmt.Fprintf(&b, "      - {url: %q}\n", u)
	}
	b.WriteString(extraUpstream)
	return b.String()
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func decodeErr(t *testing.T, body string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	return e
}

func TestRewriteRulesAndHeaders(t *testing.T) {
	var seen atomic.Pointer[http.Request]
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Clone(context.Background()))
		w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id")) // an echoing backend
		io.WriteString(w, "ok")
	})
	cfg := `
routes:
  - path_prefix: /api/
    upstream: u
    strip_prefix: /api
    add_prefix: /v2/
    request_headers: {x-gateway: wardgate}
    response_headers: {X-Served-By: wardgate}
  - path_prefix: /
    upstream: u
upstreams:
  u:
    targets: [{url: "` + be.URL + `/base"}]
`
	f := newFixture(t, cfg)
	traceID := "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, body := get(t, f.public.URL+"/api/jobs/a%2Fb?x=1",
		"Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01",
		"X-Request-Id", "req-123",
		"X-Forwarded-For", "203.0.113.9",
	)
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	r := seen.Load()
	if got, want := r.URL.EscapedPath(), "/base/v2/jobs/a%2Fb"; got != want {
		t.Errorf("upstream path = %q, want %q", got, want)
	}
	if r.URL.RawQuery != "x=1" {
		t.Errorf("query = %q", r.URL.RawQuery)
	}
	if got := r.Header.Get("X-Gateway"); got != "wardgate" {
		t.Errorf("X-Gateway = %q", got)
	}
	if got := r.Header.Get("X-Request-Id"); got != "req-123" {
		t.Errorf("upstream X-Request-Id = %q, want the client's", got)
	}
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "req-123" {
		t.Errorf("response X-Request-Id = %q, want exactly [req-123]", got)
	}
	if got := resp.Header.Get("X-Served-By"); got != "wardgate" {
		t.Errorf("X-Served-By = %q", got)
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want only the address the gateway saw (a forged chain is dropped)", got)
	}
	if got := r.Header.Get("X-Forwarded-Host"); got != strings.TrimPrefix(f.public.URL, "http://") {
		t.Errorf("X-Forwarded-Host = %q", got)
	}
	if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	tp := r.Header.Get("Traceparent")
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != traceID || parts[2] == "00f067aa0ba902b7" {
		t.Errorf("upstream traceparent = %q, want trace %s with the gateway's span", tp, traceID)
	}
	if r.Host != strings.TrimPrefix(be.URL, "http://") {
		t.Errorf("Host = %q, want the target's", r.Host)
	}

	// A generated request id when the client sends none, the same both ways.
	resp, _ = get(t, f.public.URL+"/other")
	up := seen.Load().Header.Get("X-Request-Id")
	if up == "" || resp.Header.Get("X-Request-Id") != up {
		t.Errorf("generated request id: upstream %q, client %q", up, resp.Header.Get("X-Request-Id"))
	}
	if got := seen.Load().URL.Path; got != "/base/other" {
		t.Errorf("route without rewrite: path %q", got)
	}
}

// A client naming X-Forwarded-For in Connection (a hop-by-hop header) must
// not make the gateway drop the X-Forwarded-For it adds.
func TestHopByHopCannotStripForwarded(t *testing.T) {
	var xff, custom, conn atomic.Value
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		xff.Store(r.Header.Get("X-Forwarded-For"))
		custom.Store(r.Header.Get("X-Secret-Hop"))
		conn.Store(r.Header.Get("Connection"))
	})
	f := newFixture(t, oneUpstream("", "", be.URL))
	resp, _ := get(t, f.public.URL+"/x",
		"Connection", "X-Forwarded-For, X-Secret-Hop",
		"X-Secret-Hop", "drop-me")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := xff.Load().(string); got != "127.0.0.1" {
		t.Errorf("upstream X-Forwarded-For = %q, want the gateway's 127.0.0.1", got)
	}
	if got := custom.Load().(string); got != "" {
		t.Errorf("header named in Connection reached the upstream: %q", got)
	}
	if got := conn.Load().(string); got != "" {
		t.Errorf("Connection reached the upstream: %q", got)
	}
}

func TestErrorMapping(t *testing.T) {
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	ok := newBackend(t, "ok", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			w.WriteHeader(400)
		}
	})
	cfg := `
middleware: {bodylimit: {max_bytes: 1000}}
routes:
  - {path_prefix: /refused/, upstream: refused}
  - {path_prefix: /slow/, upstream: slow}
  - {path_prefix: /limited/, upstream: ok, middleware: [bodylimit]}
upstreams:
  refused:
    retries: 0
    targets: [{url: "` + deadURL(t) + `"}]
  slow:
    retries: 0
    timeouts: {response_header: 300ms}
    targets: [{url: "` + slow.URL + `"}]
  ok:
    targets: [{url: "` + ok.URL + `"}]
`
	f := newFixture(t, cfg)
	cases := []struct {
		path     string
		want     int
		upstream string
	}{
		{"/refused/x", 502, "refused"},
		{"/slow/x", 504, "slow"},
		{"/nowhere", 404, ""},
	}
	for _, c := range cases {
		resp, body := get(t, f.public.URL+c.path)
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.path, resp.StatusCode, c.want, body)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.path, ct)
		}
		e := decodeErr(t, body)
		if e.Error == "" || e.Upstream != c.upstream || len(e.TraceID) != 32 {
			t.Errorf("%s: error body %+v", c.path, e)
		}
	}

	// A chunked body over the limit fails while the proxy streams it: 413.
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("x"), 500)
		for range 4 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, f.public.URL+"/limited/x", pr)
	resp, body := do(t, req)
	if resp.StatusCode != 413 {
		t.Errorf("chunked oversized body: status %d (%s), want 413", resp.StatusCode, body)
	}
	// Under the limit it passes.
	req, _ = http.NewRequest(http.MethodPost, f.public.URL+"/limited/x", strings.NewReader("small"))
	if resp, body := do(t, req); resp.StatusCode != 200 {
		t.Errorf("small body: status %d (%s)", resp.StatusCode, body)
	}
	// The refused target counted a failure; the 404 counted nothing.
	st := f.g.Upstreams()
	if got := st["refused"].Targets[0].Failures; got != 1 {
		t.Errorf("refused target failures = %d, want 1", got)
	}
}

func TestNoHealthyTarget503(t *testing.T) {
	be := newBackend(t, "a", nil)
	f := newFixture(t, oneUpstream("", "", be.URL))
	f.g.table.Load().upstreams["u"].set.Load().targets[0].SetHealthy(false)
	resp, body := get(t, f.public.URL+"/x")
	if resp.StatusCode != 503 {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	if e := decodeErr(t, body); e.Error != "no healthy target" || e.Upstream != "u" {
		t.Errorf("body %+v", e)
	}
	if be.hits.Load() != 0 {
		t.Errorf("unhealthy target got traffic")
	}
}

func TestRetryGetOnAnotherTarget(t *testing.T) {
	good := newBackend(t, "good", nil)
	dead := deadURL(t)
	// round_robin alternates, so half the first attempts hit the dead target.
	f := newFixture(t, oneUpstream("", "    retries: 1\n    passive: {fail_threshold: 0}\n", dead, good.URL))
	for i := range 6 {
		resp, body := get(t, f.public.URL+"/x")
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "good" {
			t.Fatalf("request %d: status %d backend %q body %q", i, resp.StatusCode, resp.Header.Get("X-Backend"), body)
		}
	}
	if n := good.hits.Load(); n != 6 {
		t.Errorf("good target hits = %d, want 6", n)
	}
	st := f.g.Upstreams()["u"]
	if st.Targets[0].Failures == 0 {
		t.Errorf("dead target never tried: the test did not exercise a retry")
	}
	// Even a POST is retried when the first attempt never reached an upstream.
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, f.public.URL+"/x", strings.NewReader("payload"))
		if resp, body := do(t, req); resp.StatusCode != 200 {
			t.Errorf("POST after a dial error: status %d %s", resp.StatusCode, body)
		}
	}
}

func TestPostNotRetriedAfterReachingUpstream(t *testing.T) {
	// Both targets read the request then drop the connection: the POST
	// may have had its effect, so it must not be sent again.
	breaker := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		panic(http.ErrAbortHandler)
	}
	a := newBackend(t, "a", breaker)
	b := newBackend(t, "b", breaker)
	f := newFixture(t, oneUpstream("", "    retries: 1\n", a.URL, b.URL))
	req, _ := http.NewRequest(http.MethodPost, f.public.URL+"/x", strings.NewReader("payload"))
	resp, body := do(t, req)
	if resp.StatusCode != 502 {
		t.Errorf("status %d, want 502 (%s)", resp.StatusCode, body)
	}
	if got := a.hits.Load() + b.hits.Load(); got != 1 {
		t.Errorf("POST reached upstreams %d times, want 1", got)
	}
	// Without a body, only the written request headers tell that the POST
	// reached the upstream.
	req, _ = http.NewRequest(http.MethodPost, f.public.URL+"/x", nil)
	resp, body = do(t, req)
	if resp.StatusCode != 502 {
		t.Errorf("empty POST: status %d, want 502 (%s)", resp.StatusCode, body)
	}
	if got := a.hits.Load() + b.hits.Load(); got != 2 {
		t.Errorf("empty POST reached upstreams %d times, want 1", got-1)
	}
	a.hits.Store(0)
	b.hits.Store(0)
	// The same failure on a GET is retried once, on the other target.
	resp, _ = get(t, f.public.URL+"/x")
	if resp.StatusCode != 502 {
		t.Errorf("GET status %d, want 502", resp.StatusCode)
	}
	if got := a.hits.Load() + b.hits.Load(); got != 2 {
		t.Errorf("GET attempts = %d, want 2 (one retry)", got)
	}
	if a.hits.Load() == 0 || b.hits.Load() == 0 {
		t.Errorf("the retry went to the same target: hits a=%d b=%d", a.hits.Load(), b.hits.Load())
	}
}

func TestPassiveEjection(t *testing.T) {
	bad := newBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) })
	good := newBackend(t, "good", nil)
	f := newFixture(t, oneUpstream("", "    retries: 0\n    passive: {fail_threshold: 3, window: 1m, eject_for: 1m}\n", bad.URL, good.URL))
	// 4xx and 503 do not count against a target.
	for range 10 {
		get(t, f.public.URL+"/x")
	}
	if n := bad.hits.Load(); n != 3 {
		t.Fatalf("bad target hits = %d, want 3 before ejection", n)
	}
	st := f.g.Upstreams()["u"].Targets[0]
	if !st.Ejected || st.EjectedUntil == nil || st.Ejections != 1 || st.Failures != 3 {
		t.Errorf("bad target state %+v", st)
	}
	if len(f.logs.lines("target ejected after repeated failures")) != 1 {
		t.Errorf("want one ejection log line:\n%s", f.logs)
	}
}

func TestPassiveIgnores4xxAnd503(t *testing.T) {
	code := atomic.Int64{}
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(code.Load())) })
	f := newFixture(t, oneUpstream("", "    passive: {fail_threshold: 1}\n", be.URL))
	for _, c := range []int{404, 429, 503, 500} {
		code.Store(int64(c))
		if resp, _ := get(t, f.public.URL+"/x"); resp.StatusCode != c {
			t.Fatalf("status %d, want %d passed through", resp.StatusCode, c)
		}
	}
	if st := f.g.Upstreams()["u"].Targets[0]; st.Ejected || st.Failures != 0 {
		t.Errorf("non-failure statuses ejected/failed the target: %+v", st)
	}
}

func TestActiveHealthCheck(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && !healthy.Load() {
			w.WriteHeader(503)
		}
	})
	f := newFixture(t, oneUpstream("", "    health_check: {path: /healthz, interval: 20ms, timeout: 1s, fall: 2, rise: 2}\n", be.URL))
	tg := f.g.table.Load().upstreams["u"].set.Load().targets[0]
	waitFor(t, "probes", func() bool { return be.hits.Load() >= 2 })
	if !tg.Healthy() {
		t.Fatal("healthy target marked down")
	}
	healthy.Store(false)
	waitFor(t, "target down", func() bool { return !tg.Healthy() })
	if resp, _ := get(t, f.public.URL+"/x"); resp.StatusCode != 503 {
		t.Errorf("status %d with the only target down, want 503", resp.StatusCode)
	}
	healthy.Store(true)
	waitFor(t, "target up", func() bool { return tg.Healthy() })
	if resp, _ := get(t, f.public.URL+"/x"); resp.StatusCode != 200 {
		t.Errorf("status %d after recovery", resp.StatusCode)
	}
}

// waitFor polls cond every 10ms for up to 20s (generous: the machine is
// shared), failing t with what.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(context.Background(), t, 20*time.Second, 10*time.Millisecond, what,
		func() (bool, string) { return cond(), "" })
}

func TestStreamingFlushes(t *testing.T) {
	release := make(chan struct{})
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "data: second\n\n")
	})
	f := newFixture(t, oneUpstream("", "", be.URL))
	resp, err := http.Get(f.public.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event before the stream ended: %q %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Errorf("rest = %q", rest)
	}
}

// TestWebSocketUpgrade runs a real HTTP/1.1 Upgrade through the gateway to
// a hijacking echo server and exchanges bytes both ways.
func TestWebSocketUpgrade(t *testing.T) {
	be := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo:" + line)
			brw.Flush()
		}
	})
	f := newFixture(t, oneUpstream("", "", be.URL))
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.public.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	for _, msg := range []string{"hello\n", "world\n"} {
		io.WriteString(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != "echo:"+msg {
			t.Fatalf("echo = %q, %v", got, err)
		}
	}
}
