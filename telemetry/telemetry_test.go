package telemetry_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/telemetry"
)

// clearOTEL unsets every OTEL_* variable for the test (restored afterwards),
// so the defaults are tested whatever the developer's shell exports.
func clearOTEL(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "") // registers the restore
			os.Unsetenv(k)
		}
	}
}

func setup(t *testing.T, service string) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), service)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

func get(t *testing.T, h http.Handler, path string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func remoteParent(t *testing.T, sampled bool) context.Context {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	flags := trace.TraceFlags(0)
	if sampled {
		flags = trace.FlagsSampled
	}
	return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true,
	}))
}

// With no OTEL_* variable, traces are off yet every span has real IDs (for
// error bodies, log lines and pprof labels), and /metrics serves the OTel
// instruments plus Go runtime and process metrics.
func TestSetupDefaultsNoEnv(t *testing.T) {
	clearOTEL(t)
	tel := setup(t, "wardgate-test")
	if tel.Service != "wardgate-test" {
		t.Errorf("Service = %q, want the default wardgate-test", tel.Service)
	}

	tr := tel.TracerProvider.Tracer("test")
	_, root := tr.Start(context.Background(), "root")
	sc := root.SpanContext()
	root.End()
	if !sc.TraceID().IsValid() || !sc.SpanID().IsValid() {
		t.Fatalf("root span has no real IDs: %v", sc)
	}
	if sc.IsSampled() || root.IsRecording() {
		t.Errorf("tracing is off by default, but the root span is sampled=%v recording=%v", sc.IsSampled(), root.IsRecording())
	}
	// A caller's sampled traceparent keeps its trace ID (so logs join the
	// caller's trace) but nothing is recorded here.
	_, child := tr.Start(remoteParent(t, true), "child")
	csc := child.SpanContext()
	child.End()
	if csc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("child of a remote parent has trace ID %s, want the parent's", csc.TraceID())
	}
	if !csc.SpanID().IsValid() || csc.SpanID().String() == "00f067aa0ba902b7" {
		t.Errorf("child span ID %s: want a new valid ID", csc.SpanID())
	}
	if csc.IsSampled() || child.IsRecording() {
		t.Errorf("tracing is off, but the child span is sampled=%v recording=%v", csc.IsSampled(), child.IsRecording())
	}

	// Metrics on the admin registry, in Prometheus names.
	c, err := tel.MeterProvider.Meter("test").Int64Counter("wardgate.test.events", metric.WithUnit("{event}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3)
	rec := get(t, tel.AdminHandler("", nil), "/metrics", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		"wardgate_test_events_total{",
		"go_goroutines ",
		"go_memstats_heap_alloc_bytes ",
		"go_gc_duration_seconds",
		"go_sched_gomaxprocs_threads ",
		"process_cpu_seconds_total ",
		"process_resident_memory_bytes ",
		`target_info{`,
		`service_name="wardgate-test"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// OTEL_SERVICE_NAME wins over the caller's default, and Telemetry.Service
// (which loggers use) follows it.
func TestSetupServiceNameFromEnv(t *testing.T) {
	clearOTEL(t)
	t.Setenv("OTEL_SERVICE_NAME", "wardgate-jobqueue-7")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
	tel := setup(t, "wardgate-jobqueue")
	if tel.Service != "wardgate-jobqueue-7" {
		t.Errorf("Service = %q, want wardgate-jobqueue-7 from OTEL_SERVICE_NAME", tel.Service)
	}
	body := get(t, tel.AdminHandler("", nil), "/metrics", nil).Body.String()
	for _, want := range []string{`service_name="wardgate-jobqueue-7"`, `deployment_environment_name="test"`} {
		if !strings.Contains(body, want) {
			t.Errorf("target_info lacks %s", want)
		}
	}
}

func TestSetupRejectsUnknownExporters(t *testing.T) {
	for _, v := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"} {
		t.Run(v, func(t *testing.T) {
			clearOTEL(t)
			t.Setenv(v, "carrier-pigeon")
			tel, err := telemetry.Setup(context.Background(), "x")
			if err == nil {
				_ = tel.Shutdown(context.Background())
				t.Fatalf("Setup accepted %s=carrier-pigeon", v)
			}
			if !strings.Contains(err.Error(), v) {
				t.Errorf("error %q does not name %s", err, v)
			}
		})
	}
}

// OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG
// reaches the SDK: root spans are sampled exactly when their trace ID falls
// under the ratio, children follow their parent, and exactly the sampled
// spans reach the OTLP endpoint by Shutdown.
func TestSetupSamplerFromEnvExportsOTLP(t *testing.T) {
	clearOTEL(t)
	recv := &testutil.OTLPReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
	tel, err := telemetry.Setup(context.Background(), "wardgate-test")
	if err != nil {
		t.Fatal(err)
	}
	tr := tel.TracerProvider.Tracer("test")

	// The traceidratio rule of the OTel spec as the Go SDK implements it:
	// the low 63 bits of the trace ID's second half below ratio*2^63.
	ratio := 0.01
	bound := uint64(ratio * (1 << 63))
	want := map[string]bool{}
	const roots = 3000
	sampled := 0
	for range roots {
		_, s := tr.Start(context.Background(), "root")
		sc := s.SpanContext()
		tid := sc.TraceID()
		expect := binary.BigEndian.Uint64(tid[8:16])>>1 < bound
		if sc.IsSampled() != expect {
			t.Fatalf("trace %s sampled=%v, the 0.01 ratio rule says %v", tid, sc.IsSampled(), expect)
		}
		if expect {
			sampled++
			want[sc.SpanID().String()] = true
		}
		s.End()
	}
	// 1% of 3000: anything from 1 to 100 shows a ratio, not always/never.
	if sampled == 0 || sampled > 100 {
		t.Errorf("%d of %d roots sampled; want about 1%%", sampled, roots)
	}
	for _, parentSampled := range []bool{true, false} {
		_, s := tr.Start(remoteParent(t, parentSampled), "child")
		if s.SpanContext().IsSampled() != parentSampled {
			t.Errorf("child of a remote parent with sampled=%v: sampled=%v (parent-based sampler not applied)", parentSampled, s.SpanContext().IsSampled())
		}
		if parentSampled {
			want[s.SpanContext().SpanID().String()] = true
		}
		s.End()
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown (flush to OTLP): %v", err)
	}
	if errs := recv.Errors(); len(errs) > 0 {
		t.Fatalf("receiver errors: %v", errs)
	}
	got := map[string]string{} // span ID -> name
	for _, s := range recv.Spans() {
		got[trace.SpanID(s.SpanId).String()] = s.Name
	}
	if len(got) != len(want) {
		t.Errorf("OTLP endpoint got %d spans, want the %d sampled ones", len(got), len(want))
	}
	for id := range want {
		if _, ok := got[id]; !ok {
			t.Errorf("sampled span %s never reached the OTLP endpoint", id)
		}
	}
}

// helperEnv selects what TestHelperProcess does in a child process.
const helperEnv = "WARDGATE_TELEMETRY_HELPER"

// runHelper runs this test binary's TestHelperProcess in a child process
// with env added, and returns its stdout and stderr.
func runHelper(t *testing.T, mode string, env ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+mode)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestHelperProcess is not a test: it is the child process of the tests
// that need a fresh process (stdout exporters, crashes).
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	ctx := context.Background()
	switch mode {
	case "console":
		tel, err := telemetry.Setup(ctx, "wardgate-console")
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		_, s := tel.TracerProvider.Tracer("test").Start(ctx, "console-probe")
		os.Stderr.WriteString("trace_id=" + s.SpanContext().TraceID().String() + "\n")
		s.End()
		c, _ := tel.MeterProvider.Meter("test").Int64Counter("wardgate.console.probe")
		c.Add(ctx, 5)
		if err := tel.Shutdown(ctx); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(4)
		}
		os.Exit(0)
	case "panic-in-do":
		// The panicking goroutine under pprof.Do: its deferred label
		// restore runs while the panic unwinds.
		pprof.Do(ctx, pprof.Labels("trace_id", "pprofdo0000000000000000000000000"), func(context.Context) {
			panic("boom under pprof.Do")
		})
	case "panic-in-span-labels":
		tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
		sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
		sctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
		// A second goroutine parked inside its own labels: with
		// GOTRACEBACK=all or crash every goroutine's labels are printed.
		parked := make(chan struct{})
		go telemetry.DoWithSpanLabels(ctx, func(context.Context) {
			close(parked)
			select {}
		}, "worker", "parked")
		<-parked
		telemetry.DoWithSpanLabels(sctx, func(context.Context) {
			panic("boom under DoWithSpanLabels")
		}, telemetry.LabelRoute, "/v1/payloads")
	}
	os.Exit(5)
}

// Console exporters (OTEL_TRACES_EXPORTER=console, OTEL_METRICS_EXPORTER=
// console) write the span and the metric to stdout by Shutdown.
func TestSetupConsoleExporters(t *testing.T) {
	clearOTEL(t)
	stdout, stderr, err := runHelper(t, "console", "OTEL_TRACES_EXPORTER=console", "OTEL_METRICS_EXPORTER=console")
	if err != nil {
		t.Fatalf("helper: %v\nstderr: %s", err, stderr)
	}
	tid := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr), "trace_id="))
	if len(tid) != 32 {
		t.Fatalf("helper did not report a trace ID; stderr: %s", stderr)
	}
	for _, want := range []string{`"Name":"console-probe"`, `"TraceID":"` + tid + `"`, `"Name":"wardgate.console.probe"`, `"Value":"wardgate-console"`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("console output lacks %s:\n%s", want, stdout)
		}
	}
}

// GODEBUG=tracebacklabels=1 (which wardgate up sets for its children) makes
// Go print pprof labels in goroutine headers of a crash traceback. pprof.Do
// loses them on the panicking goroutine (its deferred restore runs during
// the unwind); DoWithSpanLabels keeps them, so the crash names the trace.
func TestTracebackLabels(t *testing.T) {
	clearOTEL(t)
	env := []string{"GOTRACEBACK=all", "GODEBUG=tracebacklabels=1"}

	_, stderr, err := runHelper(t, "panic-in-span-labels", env...)
	if err == nil {
		t.Fatal("helper did not crash")
	}
	crashing := `[running labels:{"http_route": "/v1/payloads", "span_id": "00f067aa0ba902b7", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}]:`
	if !strings.Contains(stderr, "panic: boom under DoWithSpanLabels") || !strings.Contains(stderr, crashing) {
		t.Errorf("crash traceback lacks the panicking goroutine's labels %s:\n%s", crashing, stderr)
	}
	if !strings.Contains(stderr, `labels:{"worker": "parked"}]:`) {
		t.Errorf("crash traceback lacks the parked goroutine's labels:\n%s", stderr)
	}

	_, stderr, err = runHelper(t, "panic-in-do", env...)
	if err == nil {
		t.Fatal("helper did not crash")
	}
	if !strings.Contains(stderr, "panic: boom under pprof.Do") {
		t.Fatalf("unexpected helper output:\n%s", stderr)
	}
	if strings.Contains(stderr, "pprofdo0000") {
		t.Errorf("pprof.Do now keeps labels on a panicking goroutine; DoWithSpanLabels' non-deferred restore is no longer needed:\n%s", stderr)
	}

	// Without the GODEBUG setting, no labels: the setting is what matters.
	_, stderr, _ = runHelper(t, "panic-in-span-labels", "GOTRACEBACK=all")
	if strings.Contains(stderr, "labels:") {
		t.Errorf("labels printed without GODEBUG=tracebacklabels=1:\n%s", stderr)
	}
}

func TestDoWithSpanLabels(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	extra := []string{telemetry.LabelRoute, "/v1/", "dangling"}
	ran := false
	telemetry.DoWithSpanLabels(ctx, func(ctx context.Context) {
		ran = true
		want := map[string]string{
			telemetry.LabelTraceID: tid.String(),
			telemetry.LabelSpanID:  sid.String(),
			telemetry.LabelRoute:   "/v1/",
		}
		got := map[string]string{}
		pprof.ForLabels(ctx, func(k, v string) bool { got[k] = v; return true })
		if len(got) != len(want) {
			t.Errorf("labels %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("label %s = %q, want %q", k, got[k], v)
			}
		}
		// The goroutine itself carries them (what a profile shows).
		var buf bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		if !strings.Contains(buf.String(), `"trace_id":"`+tid.String()+`"`) {
			t.Errorf("goroutine profile lacks the trace_id label")
		}
	}, extra...)
	if !ran {
		t.Fatal("f not run")
	}
	if len(extra) != 3 || extra[2] != "dangling" {
		t.Errorf("caller's slice modified: %v", extra)
	}
	// Restored after f: this goroutine's profile entry has no trace_id.
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	if strings.Contains(buf.String(), tid.String()) {
		t.Errorf("labels still set after DoWithSpanLabels returned")
	}

	// No span and no extras: f still runs, with ctx unchanged.
	called := false
	telemetry.DoWithSpanLabels(context.Background(), func(context.Context) { called = true })
	if !called {
		t.Error("f not run without labels")
	}
}

func TestNewLoggerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, "wardgate-test", slog.LevelInfo).With("component", "x").WithGroup("g")
	log.InfoContext(remoteParent(t, false), "in a request", "k", 1)
	log.InfoContext(context.Background(), "outside")
	log.DebugContext(remoteParent(t, false), "below level")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), buf.String())
	}
	var in, out map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &out); err != nil {
		t.Fatal(err)
	}
	if in["service"] != "wardgate-test" || in["component"] != "x" {
		t.Errorf("line lacks service/component: %s", lines[0])
	}
	// trace_id/span_id are top-level keys even under WithGroup, so one
	// grep or one Loki label filter finds every line of a trace.
	if in["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || in["span_id"] != "00f067aa0ba902b7" {
		t.Errorf("line in a span lacks top-level trace_id/span_id: %s", lines[0])
	}
	if g, _ := in["g"].(map[string]any); g == nil || g["k"] != float64(1) {
		t.Errorf("record attrs not in group g: %s", lines[0])
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("line outside a span has a trace_id: %s", lines[1])
	}
}

func TestAdminHandler(t *testing.T) {
	clearOTEL(t)
	tel := setup(t, "wardgate-test")
	extra := map[string]http.Handler{"GET /admin/ping": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong") })}

	open := tel.AdminHandler("", extra)
	for path, want := range map[string]string{
		"/healthz":                       `"service":"wardgate-test"`,
		"/metrics":                       "go_goroutines",
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/goroutine?debug=1": "goroutine profile:",
		"/admin/ping":                    "pong",
	} {
		rec := get(t, open, path, nil)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, rec.Code, want)
		}
	}

	locked := tel.AdminHandler("s3cret", extra)
	for _, h := range []http.Header{nil, {"Authorization": {"Bearer wrong"}}, {"Authorization": {"s3cret"}}} {
		rec := get(t, locked, "/metrics", h)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("GET /metrics with %v: %d, want 401 with WWW-Authenticate", h, rec.Code)
		}
	}
	if rec := get(t, locked, "/debug/pprof/goroutine?debug=1", http.Header{"Authorization": {"Bearer s3cret"}}); rec.Code != http.StatusOK {
		t.Errorf("GET pprof with the token: %d", rec.Code)
	}
}

// A batch span keeps a link per collection: far more than the SDK's
// default limit of 128, which would drop the way from most requests to
// their batch. OTEL_SPAN_LINK_COUNT_LIMIT still applies when set.
func TestSetupKeepsEveryLink(t *testing.T) {
	for _, tc := range []struct {
		limit string
		want  int
	}{{"", 1000}, {"10", 10}} {
		t.Setenv("OTEL_TRACES_EXPORTER", "console")
		t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
		t.Setenv("OTEL_SPAN_LINK_COUNT_LIMIT", tc.limit)
		tel, err := telemetry.Setup(context.Background(), "links-test")
		if err != nil {
			t.Fatal(err)
		}
		_, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "process payloads",
			trace.WithSpanKind(trace.SpanKindConsumer))
		for i := range 1000 {
			span.AddLink(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{byte(i), byte(i >> 8), 1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})})
		}
		ro, ok := span.(sdktrace.ReadOnlySpan)
		if !ok {
			t.Fatalf("span %T is not an SDK span", span)
		}
		if got := len(ro.Links()); got != tc.want {
			t.Errorf("OTEL_SPAN_LINK_COUNT_LIMIT=%q: %d links kept of 1000, want %d", tc.limit, got, tc.want)
		}
		span.End()
		// The console exporter writes the span to stdout; shut down quietly.
		_ = tel.Shutdown(context.Background())
	}
}
