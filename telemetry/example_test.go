package telemetry_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"go.opentelemetry.io/otel/metric"

	"github.com/wardgate/wardgate/telemetry"
)

// Setup reads the OTEL_* environment; the meter provider's readings are
// served as Prometheus text by the admin handler (mount it on a loopback
// listener only). Call Shutdown before exiting to flush what is buffered.
func ExampleSetup() {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "example-service")
	if err != nil {
		panic(err)
	}
	defer tel.Shutdown(ctx)

	jobs, err := tel.MeterProvider.Meter("example").Int64Counter("example.jobs")
	if err != nil {
		panic(err)
	}
	jobs.Add(ctx, 3)

	_, span := tel.TracerProvider.Tracer("example").Start(ctx, "work")
	fmt.Println("trace id set:", span.SpanContext().HasTraceID()) // even with tracing off
	span.End()

	admin := httptest.NewServer(tel.AdminHandler("", nil))
	defer admin.Close()
	resp, err := http.Get(admin.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "example_jobs_total") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// trace id set: true
	// example_jobs_total{otel_scope_name="example",otel_scope_schema_url="",otel_scope_version=""} 3
}

// NewHTTPServer instruments a listener around the handler its resolver
// picks: a SERVER span per request, http.server.request.duration with the
// route, pprof labels; layers inside read the response state from the
// request context instead of wrapping the writer again.
func ExampleNewHTTPServer() {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "example-service")
	if err != nil {
		panic(err)
	}
	defer tel.Shutdown(ctx)
	duration, err := tel.MeterProvider.Meter("example").Float64Histogram("http.server.request.duration", metric.WithUnit("s"))
	if err != nil {
		panic(err)
	}

	items := telemetry.NewServerRoute("/items/") // once per route, not per request
	itemsHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		// An access log further in would read this instead of wrapping w.
		fmt.Println("status so far:", telemetry.ResponseStateFrom(r.Context()).Status)
	})
	srv := httptest.NewServer(telemetry.NewHTTPServer(telemetry.HTTPServerConfig{
		Tracer:     tel.TracerProvider.Tracer("example"),
		Propagator: tel.Propagator,
		Duration:   duration,
	}, func(r *http.Request) (http.Handler, *telemetry.ServerRoute) {
		return itemsHandler, items
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/items/7", "text/plain", nil)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	admin := httptest.NewServer(tel.AdminHandler("", nil))
	defer admin.Close()
	mresp, err := http.Get(admin.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer mresp.Body.Close()
	sc := bufio.NewScanner(mresp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "http_server_request_duration_seconds_count") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// status so far: 201
	// http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="201",http_route="/items/",otel_scope_name="example",otel_scope_schema_url="",otel_scope_version=""} 1
}
