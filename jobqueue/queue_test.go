package jobqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

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
					id, err := uuid.Parse(l.ID)
					if err != nil || id.Version() != 7 || id.Variant() != uuid.RFC4122 {
						t.Errorf("id %q is not a UUIDv7: %v", l.ID, err)
					}
					if at, err := time.Parse(time.RFC3339Nano, l.ReceivedAt); err == nil {
						if sec, nsec := id.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != at.UnixMilli() {
							t.Errorf("id %s: time %v, want the received_at millisecond %v", l.ID, time.Unix(sec, nsec), at)
						}
					}
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

// TestOneOpenBatch: workers take turns building one batch, so at any rate
// batches are full (BATCH_MAX_PAYLOADS) except the last one flushed by the
// drain, and a collection split across two batches is stored whole. With
// a batch per worker, four workers would leave up to four partial batches.
func TestOneOpenBatch(t *testing.T) {
	cfg := testConfig()
	cfg.MaxWorkers = 4
	cfg.BatchMaxPayloads = 100
	cfg.BatchMaxWait = time.Hour // only size and the drain flush
	sink := fileSink(t)
	q, url := startQueue(t, cfg, sink)
	const collections, size = 143, 7 // 1001 payloads; 7 does not divide 100
	for i := range collections {
		if r, err := post(t, nil, url, collection(size, fmt.Sprint(i))); err != nil || r.code != 202 {
			t.Fatal(r, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := q.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	objs := readBucket(t, sink.Bucket)
	var sizes []int
	for _, lines := range objs {
		sizes = append(sizes, len(lines))
	}
	sort.Ints(sizes)
	want := []int{1, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100}
	if !slices.Equal(sizes, want) {
		t.Fatalf("batch sizes %v, want %v", sizes, want)
	}
	seen := map[string]int{}
	for _, lines := range objs {
		for _, l := range lines {
			var p struct {
				Tag string `json:"tag"`
				I   int    `json:"i"`
			}
			if err := json.Unmarshal(l.Payload, &p); err != nil {
				t.Fatal(err)
			}
			seen[fmt.Sprint(p.Tag, "/", p.I)]++
		}
	}
	if len(seen) != collections*size {
		t.Fatalf("%d distinct payloads stored, want %d", len(seen), collections*size)
	}
}

// TestDurableDoesNotWaitForBatchMaxWait: in durable mode a batch is
// flushed as soon as every request being admitted is in it, so acks come
// after a PUT, not after BATCH_MAX_WAIT (an hour here), and concurrent
// clients share batches.
func TestDurableDoesNotWaitForBatchMaxWait(t *testing.T) {
	cfg := testConfig()
	cfg.AckMode = jobqueue.AckDurable
	cfg.BatchMaxWait = time.Hour
	sink := fileSink(t)
	_, url := startQueue(t, cfg, sink)
	client := &http.Client{Timeout: 2 * time.Minute} // far below an hour
	const clients, perClient, size = 8, 5, 3
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				r, err := post(t, client, url, collection(size, fmt.Sprint(c, "-", i)))
				if err != nil || r.code != 202 {
					t.Error(r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := countLines(readBucket(t, sink.Bucket)); got != clients*perClient*size {
		t.Fatalf("%d lines stored after the acks, want %d", got, clients*perClient*size)
	}
}

// TestPayloadStoredAsSent: a payload already on one line is stored byte
// for byte; one spread over lines is compacted onto one.
func TestPayloadStoredAsSent(t *testing.T) {
	cfg := testConfig()
	sink := fileSink(t)
	q, url := startQueue(t, cfg, sink)
	body := "{\"version\":\"v\",\"data\":[{\"a\": 1, \"s\":\"x y\"},\n{\n\t\"b\" : [1, 2]\r\n}]}"
	if r, err := post(t, nil, url, []byte(body)); err != nil || r.code != 202 {
		t.Fatal(r, err)
	}
	if err := q.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, lines := range readBucket(t, sink.Bucket) {
		for _, l := range lines {
			got = append(got, string(l.Payload))
		}
	}
	sort.Strings(got)
	want := []string{`{"a": 1, "s":"x y"}`, `{"b":[1,2]}`}
	if !slices.Equal(got, want) {
		t.Fatalf("payloads %q, want %q", got, want)
	}
}
