package jobqueue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/jobqueue"
)

func TestAcceptAndStore(t *testing.T) {
	for _, mode := range []jobqueue.AckMode{jobqueue.AckEnqueued, jobqueue.AckDurable} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := testConfig()
			cfg.AckMode = mode
			sink := fileSink(t)
			q, url := startQueue(t, cfg, sink)
			total := 0
			for i := range 20 {
				r, err := post(t, nil, url, collection(1+i*7, "t"))
				if err != nil {
					t.Fatal(err)
				}
				if r.code != 202 || r.body["accepted"] != float64(1+i*7) {
					t.Fatalf("answer %d %v", r.code, r.body)
				}
				total += 1 + i*7
			}
			if mode == jobqueue.AckDurable {
				// Durable: everything acked is already stored.
				if got := countLines(readBucket(t, sink.Bucket)); got != total {
					t.Fatalf("durable: %d lines stored right after the acks, want %d", got, total)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := q.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			objs := readBucket(t, sink.Bucket)
			if got := countLines(objs); got != total {
				t.Fatalf("%d lines stored, want %d", got, total)
			}
			ids := map[string]bool{}
			for key, lines := range objs {
				if !strings.HasPrefix(key, "payloads/") || !strings.HasSuffix(key, ".ndjson.gz") || !strings.Contains(key, "/test-") {
					t.Errorf("key %q", key)
				}
				if len(lines) > cfg.BatchMaxPayloads {
					t.Errorf("%s has %d lines, over BATCH_MAX_PAYLOADS", key, len(lines))
				}
				for _, l := range lines {
					if ids[l.ID] || l.ID == "" {
						t.Errorf("duplicate or empty id %q", l.ID)
					}
					ids[l.ID] = true
					if l.Version != "10.0.19045" || len(l.TraceID) != 32 || l.TraceID == strings.Repeat("0", 32) {
						t.Errorf("line %+v", l)
					}
					if _, err := time.Parse(time.RFC3339Nano, l.ReceivedAt); err != nil {
						t.Errorf("received_at: %v", err)
					}
				}
			}
		})
	}
}
