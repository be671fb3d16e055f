package jobqueue_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
	"github.com/wardgate/wardgate/telemetry"
)

type countingSink struct {
	inner jobqueue.Sink
	puts  atomic.Int64
}

func (c *countingSink) Put(ctx context.Context, key string, body []byte, ct string) error {
	c.puts.Add(1)
	return c.inner.Put(ctx, key, body, ct)
}

func memSink(b *testing.B) *countingSink {
	s, err := blobsink.Open(context.Background(), "mem://")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return &countingSink{inner: s}
}

// benchCollection is the collection bench/ingest.sh posts: 10 payloads of
// about 250 bytes each, about 2.5 KB in all.
func benchCollection() []byte {
	var b strings.Builder
	b.WriteString(`{"version":"10.0.19045","token":"bench","data":[`)
	for i := 1; i <= 10; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"seq":%d,"host":"web-%02d.example.internal","path":"/api/v2/orders/%06d/items","status":200,"bytes":%d,"duration_ms":%d.%03d,"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)","tags":["bench","wardgate","ingest"],"note":"bench payload %d"}`,
			i, i, i*7919, i*1031, i, i*37%1000, i)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// BenchmarkIngest posts benchCollection over loopback HTTP from 16
// concurrent clients (per core) into a mem:// store at the default
// configuration (clients and server share the machine: in-process figures
// are a floor for the server alone). trace1pct samples 1% of requests with
// a real SDK pipeline that exports to nowhere.
func BenchmarkIngest(b *testing.B) {
	for _, tc := range []struct {
		name   string
		mode   jobqueue.AckMode
		sample float64
	}{
		{"enqueued", jobqueue.AckEnqueued, 0},
		{"durable", jobqueue.AckDurable, 0},
		{"enqueued-trace1pct", jobqueue.AckEnqueued, 0.01},
		{"durable-trace1pct", jobqueue.AckDurable, 0.01},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := jobqueue.DefaultConfig()
			cfg.AckMode = tc.mode
			cfg.Instance = "bench"
			sink := memSink(b)
			var opts []jobqueue.Option
			if tc.sample > 0 {
				tp := sdktrace.NewTracerProvider(
					sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tc.sample))),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				opts = append(opts, jobqueue.WithTelemetry(&telemetry.Telemetry{TracerProvider: tp}))
			}
			q, err := jobqueue.New(cfg, sink, opts...)
			if err != nil {
				b.Fatal(err)
			}
			q.Start(context.Background())
			srv := httptest.NewServer(q.Handle())
			defer srv.Close()
			body := benchCollection()
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			var refused atomic.Int64
			b.SetBytes(int64(len(body)))
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/payloads", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 503 {
						refused.Add(1)
					} else if resp.StatusCode != 202 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if err := q.Drain(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Minutes(), "req/min")
			b.ReportMetric(float64(b.N*10)/elapsed.Seconds(), "payloads/s")
			b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
			b.ReportMetric(float64(sink.puts.Load())*1e6/float64(max(1, b.N*10)), "puts/Mpayload")
		})
	}
}

// BenchmarkPutsPerMillionPayloads feeds collections of 100 payloads to the
// handler in-process at default batch settings and reports how many blob
// PUTs a million payloads cost (the design notes: one million).
func BenchmarkPutsPerMillionPayloads(b *testing.B) {
	cfg := jobqueue.DefaultConfig()
	cfg.Instance = "bench"
	sink := memSink(b)
	q, err := jobqueue.New(cfg, sink)
	if err != nil {
		b.Fatal(err)
	}
	q.Start(context.Background())
	h := q.Handle()
	body := collection(100, "bench")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for {
			req := httptest.NewRequest(http.MethodPost, "/v1/payloads", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code == 202 {
				break
			}
			if rec.Code != 503 {
				b.Fatalf("status %d", rec.Code)
			}
			time.Sleep(time.Millisecond) // queue full: back off like a client
		}
	}
	if err := q.Drain(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(sink.puts.Load())*1e6/float64(b.N*100), "puts/Mpayload")
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "payloads/s")
}
