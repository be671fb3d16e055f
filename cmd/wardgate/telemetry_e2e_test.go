package main

// End-to-end telemetry tests: `wardgate up` as real processes, traced into a
// real Jaeger v2 (built by scripts/install-test-deps.sh), with a stand-in S3
// endpoint the test can hold or fail, so a request can be caught in flight.
// Helpers are prefixed "tel" to stay out of the way of the package's other
// end-to-end tests.

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wardgate/wardgate/internal/testutil"
)

// telWait polls cond every 100ms until it returns true or d passes.
func telWait(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testutil.Eventually(context.Background(), t, d, 100*time.Millisecond, what, cond)
}

// --- Jaeger --------------------------------------------------------------

type telJaeger struct {
	otlp  string // OTLP/HTTP base URL
	query string // query API base URL
}

func telJaegerBin(t *testing.T) string {
	t.Helper()
	return testutil.GoTool(t, "jaeger")
}

// telStartJaeger runs Jaeger v2 all-in-one with in-memory storage, an OTLP
// HTTP receiver and the query API on free loopback ports.
func telStartJaeger(t *testing.T) telJaeger {
	t.Helper()
	dir := t.TempDir()
	otlp, query, grpcQ := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %q
    grpc:
      endpoint: %q
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: %q
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`, query, grpcQ, otlp)
	path := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out testutil.SyncBuffer
	cmd := exec.Command(telJaegerBin(t), "--config", "file:"+path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("jaeger output:\n%s", out.String())
		}
	})
	j := telJaeger{otlp: "http://" + otlp, query: "http://" + query}
	telWait(t, 2*time.Minute, "jaeger ready", func() (bool, string) {
		select {
		case <-done:
			t.Fatalf("jaeger exited:\n%s", out.String())
		default:
		}
		resp, err := http.Get(j.query + "/api/services")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		c, err := net.Dial("tcp", otlp)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return j
}

// telSpan is one span as Jaeger's v3 API (OTLP JSON, hex IDs) returns it.
type telSpan struct {
	Service      string
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
	Links        []struct {
		TraceID string `json:"traceId"`
		SpanID  string `json:"spanId"`
	} `json:"links"`
	Status struct {
		Code int `json:"code"`
	} `json:"status"`
}

// OTLP span kinds.
const (
	telKindServer   = 2
	telKindClient   = 3
	telKindProducer = 4
	telKindConsumer = 5
)

func (s telSpan) String() string {
	return fmt.Sprintf("%s %q kind=%d trace=%s span=%s parent=%s links=%v", s.Service, s.Name, s.Kind, s.TraceID, s.SpanID, s.ParentSpanID, s.Links)
}

// spans fetches a v3 API path and flattens its spans, with service names.
func (j telJaeger) spans(t *testing.T, path string) ([]telSpan, error) {
	t.Helper()
	resp, err := http.Get(j.query + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	var doc struct {
		Result struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []struct {
						Key   string `json:"key"`
						Value struct {
							StringValue string `json:"stringValue"`
						} `json:"value"`
					} `json:"attributes"`
				} `json:"resource"`
				ScopeSpans []struct {
					Spans []telSpan `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("GET %s: %w: %.300s", path, err, body)
	}
	var out []telSpan
	for _, rs := range doc.Result.ResourceSpans {
		svc := ""
		for _, a := range rs.Resource.Attributes {
			if a.Key == "service.name" {
				svc = a.Value.StringValue
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				s.Service = svc
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// --- a stand-in S3 endpoint -----------------------------------------------

// telS3 answers the S3 PutObject calls of the job queues' blob sink. It can
// hold every PUT until released (to catch a request in flight) and fail
// the first failFirst PUT requests for the first object of each job-queue
// instance (to exercise the retry path: the AWS SDK itself makes three
// attempts before the job queue sees an error).
type telS3 struct {
	URL     string
	arrived chan string // keys of PUTs as they arrive

	release   chan struct{}
	failFirst int

	mu      sync.Mutex
	objects map[string][]byte
	first   map[string]string // instance -> its first object's key
	failed  map[string]int    // key -> PUT requests failed
}

func telNewS3(t *testing.T, hold bool, failFirst int) *telS3 {
	t.Helper()
	s := &telS3{arrived: make(chan string, 1000), release: make(chan struct{}), failFirst: failFirst,
		objects: map[string][]byte{}, first: map[string]string{}, failed: map[string]int{}}
	if !hold {
		close(s.release)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(s.open) // never leave a held PUT behind
	s.URL = srv.URL
	return s
}

func (s *telS3) open() {
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

var telInstanceRe = regexp.MustCompile(`/([^/]+)-\d+\.ndjson`)

func (s *telS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case s.arrived <- r.URL.Path:
	default:
	}
	if s.failFirst > 0 {
		inst := ""
		if m := telInstanceRe.FindStringSubmatch(r.URL.Path); m != nil {
			inst = m[1]
		}
		s.mu.Lock()
		if _, ok := s.first[inst]; !ok {
			s.first[inst] = r.URL.Path
		}
		fail := s.first[inst] == r.URL.Path && s.failed[r.URL.Path] < s.failFirst
		if fail {
			s.failed[r.URL.Path]++
		}
		s.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected by the test</Message></Error>`)
			return
		}
	}
	select {
	case <-s.release:
	case <-r.Context().Done():
		return
	}
	sum := md5.Sum(body)
	s.mu.Lock()
	s.objects[r.URL.Path] = body
	s.mu.Unlock()
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
	w.WriteHeader(http.StatusOK)
}

func (s *telS3) blobURL() string {
	return "s3://wardgate?endpoint=" + url.QueryEscape(s.URL) + "&use_path_style=true&region=us-east-1"
}

// s3Env is what the AWS SDK needs to talk to the stand-in without looking
// for real credentials or instance metadata.
var telS3Env = []string{
	"AWS_ACCESS_KEY_ID=wardgate-test", "AWS_SECRET_ACCESS_KEY=wardgate-test", "AWS_REGION=us-east-1",
	"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
}

// --- wardgate up ------------------------------------------------------------

type telRow struct {
	pid     int
	public  string // base URL
	metrics string // full /metrics URL
}

func (r telRow) admin() string { return strings.TrimSuffix(r.metrics, "/metrics") }

type telUp struct {
	cmd    *exec.Cmd
	data   string
	public string
	rows   map[string]telRow
	out    *testutil.SyncBuffer
	errOut *testutil.SyncBuffer
	done   chan struct{}
}

// telStartUp runs `wardgate up` with env added to this process's
// environment minus its OTEL_* variables, and waits for the service table.
func telStartUp(t *testing.T, env []string, args ...string) *telUp {
	t.Helper()
	u := &telUp{data: filepath.Join(t.TempDir(), "data"), out: &testutil.SyncBuffer{}, errOut: &testutil.SyncBuffer{}, done: make(chan struct{})}
	u.cmd = exec.Command(wardgateBin, append([]string{"up", "--listen", "127.0.0.1:0", "--data", u.data}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			u.cmd.Env = append(u.cmd.Env, kv)
		}
	}
	u.cmd.Env = append(u.cmd.Env, env...)
	u.cmd.Stdout, u.cmd.Stderr = u.out, u.errOut
	if err := u.cmd.Start(); err != nil {
		t.Fatalf("start wardgate up: %v", err)
	}
	go func() { _ = u.cmd.Wait(); close(u.done) }()
	t.Cleanup(func() {
		_ = testutil.Terminate(u.cmd.Process, u.done, 2*time.Minute)
		if t.Failed() {
			t.Logf("wardgate up stdout:\n%s\nstderr:\n%s", u.out.String(), u.errOut.String())
		}
	})
	telWait(t, 3*time.Minute, "wardgate up prints its table", func() (bool, string) {
		select {
		case <-u.done:
			t.Fatalf("wardgate up exited early: %v\n%s", u.cmd.ProcessState, u.errOut.String())
		default:
		}
		return strings.Contains(u.out.String(), "\nstop: "), "no table yet"
	})
	u.rows = map[string]telRow{}
	rows, err := testutil.ReadUpTable(bufio.NewScanner(strings.NewReader(u.out.String())))
	for _, r := range rows {
		u.rows[r.Service] = telRow{pid: r.PID, public: r.Public, metrics: r.Metrics}
	}
	if _, ok := u.rows["gateway"]; err != nil || !ok || len(u.rows) < 2 {
		t.Fatalf("cannot read the service table:\n%s", u.out.String())
	}
	u.public = u.rows["gateway"].public
	return u
}

// stop sends SIGTERM and wants exit 0 (children drained, spans flushed).
func (u *telUp) stop(t *testing.T) {
	t.Helper()
	if err := testutil.Terminate(u.cmd.Process, u.done, 3*time.Minute); err != nil {
		t.Fatalf("stop wardgate up: %v", err)
	}
	if code := u.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("wardgate up exited %d after SIGTERM\n%s", code, u.errOut.String())
	}
}

func (u *telUp) jobqueues() []string {
	var out []string
	for name := range u.rows {
		if strings.HasPrefix(name, "jobqueue-") {
			out = append(out, name)
		}
	}
	return out
}

// --- HTTP helpers -------------------------------------------------------------

var telClient = &http.Client{Timeout: 2 * time.Minute}

func telPost(t *testing.T, u, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := telClient.Do(req)
	if err != nil {
		t.Errorf("POST %s: %v", u, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func telGet(u string) (string, error) {
	resp, err := telClient.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), err
}

func telRandomTraceID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// telCollection is a collection of n payloads as the ingest API takes it.
func telCollection(n int) string {
	var items []string
	for i := range n {
		items = append(items, fmt.Sprintf(`{"kind":"event","n":%d,"msg":"telemetry e2e"}`, i))
	}
	return `{"version":"10.0.19045","token":"t","data":[` + strings.Join(items, ",") + `]}`
}

// --- logs ---------------------------------------------------------------------

// telLogLines reads a child's JSON log lines (DATA/run/<service>/stderr.log,
// where the supervisor writes them).
func telLogLines(t *testing.T, data, service string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "run", service, "stderr.log"))
	if err != nil {
		t.Fatalf("log of %s: %v", service, err)
	}
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s: log line is not JSON: %v: %s", service, err, line)
			continue
		}
		m["_raw"] = line
		out = append(out, m)
	}
	return out
}

var telHexID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// --- the tests ------------------------------------------------------------------

// TestTelemetryTraceThroughStack follows one POST through `wardgate up`
// into Jaeger: one trace with the gateway SERVER span, a CLIENT span for the
// upstream attempt, the job queue's SERVER and PRODUCER spans, and the batch
// CONSUMER span (its own trace, linked to the producer) with a CLIENT span
// for the blob PUT. While the request is held in flight (ACK_MODE=durable
// and a PUT the test holds), goroutine profiles of the gateway and of the
// job queue name its trace_id, and the worker's profile names the batch
// trace. Every log line of the request carries trace_id and span_id.
func TestTelemetryTraceThroughStack(t *testing.T) {
	jaeger := telStartJaeger(t)
	s3 := telNewS3(t, true, 0)
	env := append([]string{
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + jaeger.otlp,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_SAMPLER=always_on",
		"OTEL_BSP_SCHEDULE_DELAY=200",
		"LOG_LEVEL=debug",
		"BATCH_MAX_WAIT=50ms",
	}, telS3Env...)
	started := time.Now()
	up := telStartUp(t, env, "--ack-mode", "durable", "--blob-url", s3.blobURL())

	traceID := telRandomTraceID(t)
	const parentSpan = "00f067aa0ba902b7"
	type answer struct {
		code int
		body string
	}
	posted := make(chan answer, 1)
	go func() {
		code, body := telPost(t, up.public+"/v1/payloads", telCollection(3),
			map[string]string{"traceparent": "00-" + traceID + "-" + parentSpan + "-01"})
		posted <- answer{code, body}
	}()

	// The job queue has acked nothing yet (durable): its PUT is held.
	var key string
	select {
	case key = <-s3.arrived:
	case a := <-posted:
		t.Fatalf("POST answered %d %s before its payloads were stored (ACK_MODE=durable)", a.code, a.body)
	case <-time.After(2 * time.Minute):
		t.Fatal("no blob PUT within 2m of the POST")
	}
	t.Logf("PUT %s held; request %s in flight", key, traceID)

	label := `"trace_id":"` + traceID + `"`
	gwProf, err := adminGet(t, up.data, up.rows["gateway"].admin()+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(gwProf, label) || !strings.Contains(gwProf, `"http_route":"/v1/"`) {
		t.Errorf("gateway goroutine profile taken with the request in flight lacks %s and its http_route label:\n%.3000s", label, gwProf)
	}
	jqProfiles := map[string]string{}
	handler := ""
	for _, name := range up.jobqueues() {
		p, err := adminGet(t, up.data, up.rows[name].admin()+"/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		jqProfiles[name] = p
		if strings.Contains(p, label) {
			handler = name
		}
	}
	if handler == "" {
		t.Errorf("no job queue's goroutine profile names the in-flight request's %s", label)
	} else if !strings.Contains(jqProfiles[handler], `"http_route":"/v1/payloads"`) {
		t.Errorf("%s: request goroutine lacks http_route=/v1/payloads", handler)
	}

	// A refused collection (400): the gateway's access log and the job
	// queue's debug line must both carry its trace.
	badTrace := telRandomTraceID(t)
	if code, body := telPost(t, up.public+"/v1/payloads", `{"version":"1","data":`,
		map[string]string{"traceparent": "00-" + badTrace + "-" + parentSpan + "-01"}); code != http.StatusBadRequest || !strings.Contains(body, badTrace) {
		t.Errorf("malformed POST: %d %s; want 400 naming trace %s", code, body, badTrace)
	}

	s3.open()
	select {
	case a := <-posted:
		if a.code != http.StatusAccepted || !strings.Contains(a.body, `"accepted":3`) {
			t.Fatalf("POST: %d %s, want 202 accepted 3", a.code, a.body)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("POST not answered within 2m of releasing the PUT")
	}
	up.stop(t) // SIGTERM: every child flushes its spans on the way out

	// --- the request's trace in Jaeger.
	var spans []telSpan
	telWait(t, time.Minute, "trace "+traceID+" complete in jaeger", func() (bool, string) {
		var err error
		spans, err = jaeger.spans(t, "/api/v3/traces/"+traceID)
		if err != nil {
			return false, err.Error()
		}
		kinds := map[int]int{}
		for _, s := range spans {
			kinds[s.Kind]++
		}
		return kinds[telKindServer] >= 2 && kinds[telKindClient] >= 1 && kinds[telKindProducer] >= 1, fmt.Sprintf("%d spans: %v", len(spans), spans)
	})
	find := func(what string, ok func(telSpan) bool) telSpan {
		t.Helper()
		var hits []telSpan
		for _, s := range spans {
			if ok(s) {
				hits = append(hits, s)
			}
		}
		if len(hits) != 1 {
			t.Fatalf("want exactly one %s in trace %s, got %d; trace:\n%s", what, traceID, len(hits), telDump(spans))
		}
		return hits[0]
	}
	for _, s := range spans {
		if s.TraceID != traceID {
			t.Errorf("span in another trace: %v", s)
		}
		if s.Status.Code == 2 {
			t.Errorf("span with error status in a successful request: %v", s)
		}
	}
	gwServer := find("gateway SERVER span", func(s telSpan) bool { return s.Service == "wardgate-gateway" && s.Kind == telKindServer })
	if gwServer.ParentSpanID != parentSpan {
		t.Errorf("gateway SERVER span's parent is %q, want the caller's %s", gwServer.ParentSpanID, parentSpan)
	}
	gwClient := find("gateway CLIENT span (one attempt)", func(s telSpan) bool { return s.Service == "wardgate-gateway" && s.Kind == telKindClient })
	if gwClient.ParentSpanID != gwServer.SpanID {
		t.Errorf("gateway CLIENT span not a child of its SERVER span: %v", gwClient)
	}
	jqServer := find("job queue SERVER span", func(s telSpan) bool { return s.Kind == telKindServer && s.Service != "wardgate-gateway" })
	if jqServer.Service != "wardgate-"+handler {
		t.Errorf("job queue SERVER span from %q; the request was in flight in %s", jqServer.Service, handler)
	}
	if jqServer.ParentSpanID != gwClient.SpanID {
		t.Errorf("job queue SERVER span not a child of the gateway's CLIENT span (traceparent not propagated per attempt): %v", jqServer)
	}
	producer := find("PRODUCER span", func(s telSpan) bool { return s.Kind == telKindProducer })
	if producer.Service != jqServer.Service || producer.ParentSpanID != jqServer.SpanID {
		t.Errorf("PRODUCER span not a child of the job queue SERVER span: %v", producer)
	}

	// --- the batch: a CONSUMER span in its own trace, linked to the producer.
	q := url.Values{
		"query.service_name":   {jqServer.Service},
		"query.operation_name": {"process payloads"},
		"query.start_time_min": {started.Add(-time.Minute).UTC().Format(time.RFC3339)},
		"query.start_time_max": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339)},
		"query.num_traces":     {"100"},
	}
	var consumer telSpan
	var batch []telSpan
	telWait(t, time.Minute, "CONSUMER span linked to the producer in jaeger", func() (bool, string) {
		found, err := jaeger.spans(t, "/api/v3/traces?"+q.Encode())
		if err != nil {
			return false, err.Error()
		}
		for _, s := range found {
			for _, l := range s.Links {
				if s.Kind == telKindConsumer && l.TraceID == traceID && l.SpanID == producer.SpanID {
					consumer = s
				}
			}
		}
		if consumer.SpanID == "" {
			return false, fmt.Sprintf("no linked consumer among %d spans: %s", len(found), telDump(found))
		}
		batch, err = jaeger.spans(t, "/api/v3/traces/"+consumer.TraceID)
		return err == nil, fmt.Sprint(err)
	})
	put := 0
	for _, s := range batch {
		if s.Kind == telKindClient && s.ParentSpanID == consumer.SpanID && s.Service == jqServer.Service {
			put++
		}
	}
	if put != 1 {
		t.Errorf("want one CLIENT span for the blob PUT under the CONSUMER span, got %d:\n%s", put, telDump(batch))
	}
	// The worker that was storing the batch carried the batch's trace.
	if handler != "" && !strings.Contains(jqProfiles[handler], `"trace_id":"`+consumer.TraceID+`"`) {
		t.Errorf("%s: the worker goroutine did not carry the batch trace %s while its PUT was held", handler, consumer.TraceID)
	}

	// --- logs: lines of these requests carry trace_id and span_id.
	checkLines := func(service string) map[string][]map[string]any {
		byTrace := map[string][]map[string]any{}
		for _, l := range telLogLines(t, up.data, service) {
			raw := l["_raw"].(string)
			for _, tid := range []string{traceID, badTrace} {
				if strings.Contains(raw, tid) {
					if l["trace_id"] != tid || !telHexID.MatchString(fmt.Sprint(l["span_id"])) {
						t.Errorf("%s: log line mentions trace %s but trace_id/span_id are %v/%v: %s", service, tid, l["trace_id"], l["span_id"], raw)
					}
					byTrace[tid] = append(byTrace[tid], l)
				}
			}
			// Every request-scoped line (an access log line, a refusal)
			// carries a trace.
			if l["msg"] == "http request" || l["msg"] == "payloads refused" || l["request_id"] != nil {
				if _, ok := l["trace_id"]; !ok {
					t.Errorf("%s: request log line without trace_id: %s", service, raw)
				}
			}
		}
		return byTrace
	}
	gwLines := checkLines("gateway")
	if ls := gwLines[traceID]; len(ls) == 0 {
		t.Errorf("gateway: no log line for trace %s", traceID)
	} else if ls[0]["span_id"] != gwServer.SpanID {
		t.Errorf("gateway access log span_id %v, want the SERVER span %s", ls[0]["span_id"], gwServer.SpanID)
	}
	if len(gwLines[badTrace]) == 0 {
		t.Errorf("gateway: no log line for the refused request's trace %s", badTrace)
	}
	refused := 0
	for _, name := range up.jobqueues() {
		for _, l := range checkLines(name)[badTrace] {
			if l["msg"] == "payloads refused" {
				refused++
			}
		}
	}
	if refused != 1 {
		t.Errorf("want one job-queue log line \"payloads refused\" with trace_id %s, got %d", badTrace, refused)
	}
}

func telDump(spans []telSpan) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString("  " + s.String() + "\n")
	}
	return b.String()
}

// --- metrics ------------------------------------------------------------------

// telDocMetric is one row of a table in docs/metrics.md.
type telDocMetric struct {
	name, typ string
	labels    []string
	processes []string // gateway, jobqueue, up; or all
	line      int
}

// telReadMetricsDoc parses every table row of docs/metrics.md whose first
// cell is a backticked metric name: | `name` | type | `l1`, `l2` | unit | process | ... |
func telReadMetricsDoc(t *testing.T) []telDocMetric {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatalf("docs/metrics.md: %v", err)
	}
	tick := regexp.MustCompile("`([^`]+)`")
	var out []telDocMetric
	for i, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 6 {
			t.Fatalf("docs/metrics.md:%d: want 6 columns: %s", i+1, line)
		}
		m := telDocMetric{typ: strings.TrimSpace(cells[1]), line: i + 1}
		if n := tick.FindStringSubmatch(cells[0]); n != nil {
			m.name = n[1]
		}
		for _, l := range tick.FindAllStringSubmatch(cells[2], -1) {
			m.labels = append(m.labels, l[1])
		}
		for _, p := range strings.Split(cells[4], ",") {
			p = strings.TrimSpace(p)
			switch p {
			case "gateway", "jobqueue", "up", "all":
			default:
				t.Fatalf("docs/metrics.md:%d: process %q: want all, or a list of gateway, jobqueue, up", i+1, p)
			}
			m.processes = append(m.processes, p)
		}
		out = append(out, m)
	}
	return out
}

func telScrape(u string) (map[string]*dto.MetricFamily, error) {
	body, err := telGet(u)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return fams, nil
}

// telCheckDoc returns what the scraped families lack of the documented rows
// for a process kind ("gateway", "jobqueue" or "up"). The
// wardgate_discovery_* rows are served only by a gateway with a discover:
// upstream: for one without (discovers false) they must be absent.
func telCheckDoc(doc []telDocMetric, kind string, discovers bool, fams map[string]*dto.MetricFamily) []string {
	var missing []string
	for _, m := range doc {
		if !slices.Contains(m.processes, "all") && !slices.Contains(m.processes, kind) {
			continue
		}
		if strings.HasPrefix(m.name, "wardgate_discovery_") && !discovers {
			if fams[m.name] != nil {
				missing = append(missing, fmt.Sprintf("docs/metrics.md:%d %s: served by a gateway without a discover: upstream", m.line, m.name))
			}
			continue
		}
		f := fams[m.name]
		if f == nil {
			// The text parser names counters without _total... only in
			// the OpenMetrics format; in text format the name is as served.
			missing = append(missing, fmt.Sprintf("docs/metrics.md:%d %s: not served", m.line, m.name))
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != m.typ {
			missing = append(missing, fmt.Sprintf("docs/metrics.md:%d %s: type %s, documented %s", m.line, m.name, got, m.typ))
		}
		for _, l := range m.labels {
			seen := false
			for _, s := range f.GetMetric() {
				for _, lp := range s.GetLabel() {
					if lp.GetName() == l {
						seen = true
					}
				}
			}
			if !seen {
				missing = append(missing, fmt.Sprintf("docs/metrics.md:%d %s: no series with label %s", m.line, m.name, l))
			}
		}
	}
	return missing
}

// TestTelemetryMetricsDocumented drives traffic through `wardgate up` that
// exercises every documented series (accepted, refused, stored, a failed
// and retried blob PUT, a retried upstream attempt after a job queue is
// killed, a config reload, a job queue crashed by SIGQUIT so up writes and
// analyzes a post-mortem), then checks that every metric docs/metrics.md
// lists is served by every process it is listed for (up included, on its
// own admin listener), with its labels. A second gateway whose upstream is
// discovered from DNS (SRV records of up's job queues, served in-process
// by miekg/dns) must serve the gateway rows including the
// wardgate_discovery_* ones, which up's static gateway must not serve.
func TestTelemetryMetricsDocumented(t *testing.T) {
	doc := telReadMetricsDoc(t)
	if len(doc) < 30 {
		t.Fatalf("docs/metrics.md lists only %d metrics; the table parser is probably broken", len(doc))
	}
	s3 := telNewS3(t, false, 4)
	env := append([]string{"BATCH_MAX_WAIT=50ms", "LOG_LEVEL=info"}, telS3Env...)
	up := telStartUp(t, env, "--blob-url", s3.blobURL())
	gw := up.rows["gateway"]
	if _, ok := up.rows["up"]; !ok {
		t.Fatalf("no row for up itself in the table:\n%s", up.out.String())
	}

	dnsGw := telStartDNSGateway(t, up)

	// A crash that leaves a core: up writes a post-mortem and analyzes it
	// (post-mortem counters, analysis time), and restarts the job queue.
	// Before any traffic, so no acked payload is lost with it.
	crashed := up.rows["jobqueue-2"]
	if err := syscall.Kill(crashed.pid, syscall.SIGQUIT); err != nil {
		t.Fatalf("SIGQUIT jobqueue-2: %v", err)
	}
	telWait(t, 2*time.Minute, "jobqueue-2 restarted after its crash", func() (bool, string) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(crashed.pid)); err == nil {
			return false, "the crashed process is still there"
		}
		_, err := telGet(crashed.public + "/healthz")
		return err == nil, fmt.Sprint(err)
	})
	// The analysis (delve) takes a core's worth of CPU: let it finish so
	// it does not slow the burst below out of its short window.
	telWait(t, 3*time.Minute, "the post-mortem of jobqueue-2 analyzed", func() (bool, string) {
		fams, err := telScrape(up.rows["up"].metrics)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range fams["wardgate_postmortems_total"].GetMetric() {
			lbl := map[string]string{}
			for _, lp := range m.GetLabel() {
				lbl[lp.GetName()] = lp.GetValue()
			}
			if lbl["service"] == "jobqueue-2" && lbl["result"] != "analyzed" && m.GetCounter().GetValue() > 0 {
				t.Fatalf("the post-mortem of jobqueue-2 was not analyzed: result %s (see up's log)", lbl["result"])
			}
			if lbl["service"] == "jobqueue-2" && lbl["result"] == "analyzed" && m.GetCounter().GetValue() == 1 {
				return true, ""
			}
		}
		return false, "not analyzed yet"
	})
	// The retried attempt below needs the gateway to see jobqueue-2 up.
	telWait(t, time.Minute, "the gateway sees every job queue healthy", func() (bool, string) {
		fams, err := telScrape(gw.metrics)
		if err != nil {
			return false, err.Error()
		}
		healthy := 0.0
		for _, m := range fams["wardgate_upstream_healthy"].GetMetric() {
			healthy += m.GetGauge().GetValue()
		}
		return healthy == float64(len(up.jobqueues())), fmt.Sprintf("%v healthy", healthy)
	})

	// A retried attempt: kill one job queue; the gateway's next attempts on
	// it fail (reset on a pooled connection, or refused) and are retried on
	// the other. GETs (answered 405 by a job queue), because a POST whose
	// body went out on a connection that was then reset is, rightly, not
	// retried. The supervisor restarts the job queue.
	victim := up.rows["jobqueue-1"]
	if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill jobqueue-1: %v", err)
	}
	// Once the process is dead (gone or a zombie), its listener is closed;
	// the supervisor restarts it no sooner than 100ms later. A burst of
	// concurrent requests in that window sends some to the dead target
	// (until passive ejection takes it out).
	telWait(t, time.Minute, "jobqueue-1 dead", func() (bool, string) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(victim.pid) + "/stat")
		if err != nil {
			return true, ""
		}
		f := strings.Fields(string(b))
		return len(f) > 2 && (f[2] == "Z" || f[2] == "X"), string(b)
	})
	telWait(t, 2*time.Minute, "a retried upstream attempt", func() (bool, string) {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() { _, _ = telGet(up.public + "/v1/payloads") })
		}
		wg.Wait()
		fams, err := telScrape(gw.metrics)
		if err != nil {
			return false, err.Error()
		}
		if fams["wardgate_upstream_retries_total"] != nil {
			return true, ""
		}
		// The burst missed the window between the death and the restart
		// (a loaded machine): kill the restarted process again. up doubles
		// its restart backoff at each consecutive crash, so the window
		// widens every time.
		if fams, err := telScrape(victim.metrics); err == nil {
			for _, m := range fams["target_info"].GetMetric() {
				for _, lp := range m.GetLabel() {
					if pid, err := strconv.Atoi(lp.GetValue()); lp.GetName() == "process_pid" && err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
		return false, "no retry yet"
	})
	telWait(t, 2*time.Minute, "jobqueue-1 restarted", func() (bool, string) {
		_, err := telGet(victim.public + "/healthz")
		return err == nil, fmt.Sprint(err)
	})

	// A config reload.
	if err := syscall.Kill(gw.pid, syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP gateway: %v", err)
	}

	// Traffic each job queue sees itself (the restarted one's counters
	// started over): accepted, refused, stored (after one failed PUT).
	for _, name := range up.jobqueues() {
		r := up.rows[name]
		if code, body := telPost(t, r.public+"/v1/payloads", telCollection(10), nil); code != http.StatusAccepted {
			t.Fatalf("%s: POST: %d %s", name, code, body)
		}
		if code, _ := telPost(t, r.public+"/v1/payloads", `{"version":`, nil); code != http.StatusBadRequest {
			t.Fatalf("%s: malformed POST: %d, want 400", name, code)
		}
	}
	for range 4 {
		if code, body := telPost(t, up.public+"/v1/payloads", telCollection(10), nil); code != http.StatusAccepted {
			t.Fatalf("POST via gateway: %d %s", code, body)
		}
	}
	telWait(t, time.Minute, "the DNS-discovering gateway accepts a collection", func() (bool, string) {
		code, body := telPost(t, dnsGw.Public+"/v1/payloads", telCollection(10), nil)
		return code == http.StatusAccepted, fmt.Sprintf("%d %s", code, body)
	})
	// A failed attempt there too (error_type): a target nobody listens
	// on joins the DNS answer; round robin sends it a share of GETs
	// until its health check takes it out.
	dnsGw.answer(t, "http://"+testutil.FreeAddr(t))
	telWait(t, time.Minute, "the DNS-discovering gateway records a refused attempt", func() (bool, string) {
		for range 8 {
			_, _ = telGet(dnsGw.Public + "/v1/payloads")
		}
		fams, err := telScrape(dnsGw.Admin + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		for _, m := range fams["http_client_request_duration_seconds"].GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "error_type" {
					return true, ""
				}
			}
		}
		return false, "no attempt with error_type yet"
	})
	dnsGw.answer(t)

	var missing []string
	telWait(t, 2*time.Minute, "every documented metric served", func() (bool, string) {
		missing = nil
		for name, r := range up.rows {
			kind := "jobqueue"
			if name == "gateway" || name == "up" {
				kind = name
			}
			fams, err := telScrape(r.metrics)
			if err != nil {
				return false, err.Error()
			}
			for _, m := range telCheckDoc(doc, kind, false, fams) {
				missing = append(missing, name+": "+m)
			}
		}
		fams, err := telScrape(dnsGw.Admin + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		for _, m := range telCheckDoc(doc, "gateway", true, fams) {
			missing = append(missing, "gateway with discover: "+m)
		}
		return len(missing) == 0, strings.Join(missing, "\n")
	})

	// The failed PUT was logged with the batch's trace.
	up.stop(t)
	for _, name := range up.jobqueues() {
		warned := false
		for _, l := range telLogLines(t, up.data, name) {
			if l["msg"] == "blob put failed, retrying" {
				warned = true
				if _, ok := l["trace_id"]; !ok {
					t.Errorf("%s: blob retry warning without trace_id: %s", name, l["_raw"])
				}
			}
		}
		if !warned {
			t.Errorf("%s: no \"blob put failed, retrying\" line although its first PUT failed", name)
		}
	}
	s3.mu.Lock()
	defer s3.mu.Unlock()
	if len(s3.objects) == 0 {
		t.Error("nothing stored in the S3 stand-in")
	}
}

// telDNSGateway is a `wardgate gateway` whose upstream is discovered from
// the SRV records of up's job queues, served by an in-process DNS server.
type telDNSGateway struct {
	*testutil.Proc
	dns  *testutil.DNSServer
	urls []string // the job queues' base URLs in the answer
}

const telSRVName = "_http._tcp.jobqueue.wardgate.test."

// answer makes the DNS server answer the job queues and extra base URLs.
func (g *telDNSGateway) answer(t *testing.T, extra ...string) {
	t.Helper()
	lines, err := testutil.SRVLines(telSRVName, 1, append(slices.Clone(g.urls), extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.dns.Set(lines...); err != nil {
		t.Fatal(err)
	}
}

// telStartDNSGateway starts a telDNSGateway; it is stopped at the test's
// cleanup.
func telStartDNSGateway(t *testing.T, up *telUp) *telDNSGateway {
	t.Helper()
	const name = telSRVName
	g := &telDNSGateway{dns: testutil.StartDNS(t)}
	for _, jq := range up.jobqueues() {
		g.urls = append(g.urls, up.rows[jq].public)
	}
	g.answer(t)
	d := g.dns
	file := filepath.Join(t.TempDir(), "gateway-dns.yaml")
	cfg := fmt.Sprintf(`routes:
  - path_prefix: /v1/
    upstream: jobqueue
upstreams:
  jobqueue:
    balancer: round_robin
    discover: {name: %q, type: srv, interval: 1s, resolver: %q}
    health_check: {path: /healthz, interval: 1s, timeout: 500ms, fall: 2, rise: 1}
    retries: 1
`, name, d.Addr)
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wardgateBin, "gateway", "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "OTEL_TRACES_EXPORTER=none")
	g.Proc = testutil.StartGateway(t, cmd, time.Minute)
	return g
}
