package jobqueue_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
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

// BenchmarkIngest posts collections of 10 payloads over loopback HTTP from
// 32 concurrent clients into a mem:// store, default config except a 20ms
// BATCH_MAX_WAIT (so durable acks are not a 1s wait each).
func BenchmarkIngest(b *testing.B) {
	for _, mode := range []jobqueue.AckMode{jobqueue.AckEnqueued, jobqueue.AckDurable} {
		b.Run(string(mode), func(b *testing.B) {
			cfg := jobqueue.DefaultConfig()
			cfg.AckMode = mode
			cfg.BatchMaxWait = 20 * time.Millisecond
			cfg.Instance = "bench"
			sink := memSink(b)
			q, err := jobqueue.New(cfg, sink)
			if err != nil {
				b.Fatal(err)
			}
			q.Start(context.Background())
			srv := httptest.NewServer(q.Handle())
			defer srv.Close()
			body := collection(10, "bench")
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
					r, err := post(b, client, srv.URL, body)
					if err != nil {
						b.Error(err)
						return
					}
					if r.code == 503 {
						refused.Add(1)
					} else if r.code != 202 {
						b.Errorf("status %d", r.code)
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
