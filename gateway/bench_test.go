package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wardgate/wardgate/telemetry"
)

// BenchmarkServeHTTP measures a proxied request through the gateway's
// public listener (time and allocs/op): the default chain (recover,
// requestid, accesslog to a JSON logger writing to io.Discard), spans,
// metrics, pprof labels and one attempt to a real loopback backend; with
// traces off, and always_on exporting OTLP/HTTP to a loopback server that
// drops it. Everything runs in this process, so allocs/op counts the
// client, the gateway, the backend and the export; compare the modes of
// one run, not absolute values.
func BenchmarkServeHTTP(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	b.Run("traces=off", func(b *testing.B) {
		b.Setenv("OTEL_TRACES_EXPORTER", "")
		benchServeHTTP(b, nil)
	})
	b.Run("traces=off/POST", func(b *testing.B) {
		// A request body: the body wrapper and its read deadlines.
		b.Setenv("OTEL_TRACES_EXPORTER", "")
		benchServeHTTP(b, []byte(`{"payloads":[{"id":1,"data":"0123456789abcdef0123456789abcdef"}]}`))
	})
	b.Run("traces=always_on", func(b *testing.B) {
		b.Setenv("OTEL_TRACES_EXPORTER", "otlp")
		b.Setenv("OTEL_TRACES_SAMPLER", "always_on")
		b.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
		b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
		benchServeHTTP(b, nil)
	})
}

// benchServeHTTP sends GETs, or POSTs of reqBody when it is not nil.
func benchServeHTTP(b *testing.B, reqBody []byte) {
	body := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	}))
	defer be.Close()
	cfg, err := Parse([]byte(oneUpstream("", "", be.URL)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tel, err := telemetry.Setup(ctx, "gateway-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	g, err := New(ctx, cfg, tel, telemetry.NewLogger(io.Discard, "gateway-bench", slog.LevelInfo))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	pub := httptest.NewServer(g)
	defer pub.Close()
	client := pub.Client()
	method := http.MethodGet
	if reqBody != nil {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, pub.URL+"/bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if reqBody != nil {
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
			req.ContentLength = int64(len(reqBody))
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.ReadFull(resp.Body, buf)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != len(body) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}
