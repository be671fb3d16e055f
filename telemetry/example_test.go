package telemetry_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

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
