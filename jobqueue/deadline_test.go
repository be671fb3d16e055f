package jobqueue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/klauspost/compress/gzip"

	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
	"github.com/wardgate/wardgate/telemetry"
)

// hungStore is a TCP listener that accepts every connection, reads what
// it is sent and never answers: an S3 endpoint that hangs.
type hungStore struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newHungStore(t *testing.T, addr string) *hungStore {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &hungStore{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(h.Close)
	return h
}

func (h *hungStore) Addr() string { return h.ln.Addr().String() }

// Close stops listening and drops every connection.
func (h *hungStore) Close() {
	h.ln.Close()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// s3URL is the BLOB_URL of bucket "ingest" at addr.
func s3URL(addr string) string {
	return "s3://ingest?endpoint=http://" + addr + "&region=us-east-1&use_path_style=true"
}

func s3Env(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
}

// fakeS3 serves gofakes3 with bucket "ingest" on addr ("127.0.0.1:0" for
// any port).
func fakeS3(t *testing.T, addr string) *httptest.Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("ingest"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gofakes3.New(backend).Server())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// metricValue reads one unlabelled counter from the telemetry's /metrics.
func metricValue(t *testing.T, tel *telemetry.Telemetry, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.AdminHandler("", nil).ServeHTTP(rec, mustReq(t, "/metrics"))
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestHungStore: an S3 endpoint that accepts and never answers. Each PUT
// attempt ends at BLOB_PUT_TIMEOUT as a counted error (timeouts and
// errors metrics) and is retried; a durable client is answered 503 +
// Retry-After at ACK_TIMEOUT instead of hanging; Drain ends at its
// deadline and spills every acked payload to SPILL_DIR. With the store
// back, the next queue on that SPILL_DIR stores them, each exactly once,
// and empties the directory.
func TestHungStore(t *testing.T) {
	s3Env(t)
	hung := newHungStore(t, "127.0.0.1:0")
	spillDir := filepath.Join(t.TempDir(), "spill")
	tel, err := telemetry.Setup(context.Background(), "jobqueue-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	sink, err := blobsink.Open(context.Background(), s3URL(hung.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cfg := testConfig()
	cfg.AckMode = jobqueue.AckDurable
	cfg.PutTimeout = 300 * time.Millisecond
	cfg.AckTimeout = time.Second
	cfg.SpillDir = spillDir
	q, err := jobqueue.New(cfg, sink, jobqueue.WithTelemetry(tel))
	if err != nil {
		t.Fatal(err)
	}
	q.Start(context.Background())
	srv := httptest.NewServer(q.Handle())
	defer srv.Close()

	// Durable clients: answered 503 + Retry-After at ACK_TIMEOUT. The
	// client's own timeout is far longer: without the deadline it hangs.
	client := &http.Client{Timeout: 2 * time.Minute}
	const clients, size = 4, 7
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := post(t, client, srv.URL, collection(size, fmt.Sprint("durable-", c)))
			if err != nil {
				t.Error(err)
				return
			}
			if r.code != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(r.body["error"]), "ACK_TIMEOUT") {
				t.Errorf("durable post with the store hung: %d %v, want 503 + Retry-After naming ACK_TIMEOUT", r.code, r.body)
			}
		}()
	}
	wg.Wait()
	testutil.Eventually(context.Background(), t, time.Minute, 10*time.Millisecond, "PUT timeouts counted as errors", func() (bool, string) {
		timeouts, errs := metricValue(t, tel, "wardgate_blob_put_timeouts_total"), metricValue(t, tel, "wardgate_blob_put_errors_total")
		return timeouts >= 2 && errs >= timeouts, fmt.Sprintf("timeouts %v, errors %v", timeouts, errs)
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = q.Drain(ctx)
	if !errors.Is(err, jobqueue.ErrSpilled) || !strings.Contains(err.Error(), fmt.Sprintf("%d acked payloads", clients*size)) {
		t.Fatalf("Drain = %v, want ErrSpilled for %d payloads", err, clients*size)
	}
	if got := metricValue(t, tel, "wardgate_payloads_spilled_total"); got != clients*size {
		t.Errorf("spilled metric %v, want %d", got, clients*size)
	}
	if n := spilledLines(t, spillDir); n != clients*size {
		t.Fatalf("%d payload lines in SPILL_DIR, want %d", n, clients*size)
	}

	// The store is back (a working S3); a new queue on the same SPILL_DIR.
	good := fakeS3(t, "127.0.0.1:0")
	sink2, err := blobsink.Open(context.Background(), s3URL(strings.TrimPrefix(good.URL, "http://")))
	if err != nil {
		t.Fatal(err)
	}
	defer sink2.Close()
	cfg.AckMode = jobqueue.AckEnqueued
	q2, url2 := startQueue(t, cfg, sink2)
	if r, err := post(t, nil, url2, collection(3, "new")); err != nil || r.code != 202 {
		t.Fatal(r, err)
	}
	if err := q2.Drain(context.Background()); err != nil { // waits for the recovery too
		t.Fatal(err)
	}
	stored := readBucket(t, sink2.Bucket)
	seen := map[string]int{}
	for _, lines := range stored {
		for _, l := range lines {
			seen[string(l.Payload)]++
		}
	}
	if len(seen) != clients*size+3 || countLines(stored) != clients*size+3 {
		t.Fatalf("%d distinct payloads, %d lines stored; want %d each", len(seen), countLines(stored), clients*size+3)
	}
	if n := spilledLines(t, spillDir); n != 0 {
		t.Fatalf("%d payload lines still in SPILL_DIR after they were stored", n)
	}
}

// spilledLines counts the payload lines in the objects under dir.
func spilledLines(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(path, ".tmp") {
			t.Errorf("temporary file left in SPILL_DIR: %s", path)
			return nil
		}
		data, err := testutil.ReadBlob(path)
		if err != nil {
			return err
		}
		n += strings.Count(string(data), "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSpillIsFewFilesEvenWithTinyBatches: with one object per payload
// (BATCH_MAX_PAYLOADS=1), what the drain deadline leaves is spilled in a
// few big files, not one fsync'd file per payload (which would outlast the
// seconds before SIGKILL), and each payload exactly once.
func TestSpillIsFewFilesEvenWithTinyBatches(t *testing.T) {
	cfg := testConfig()
	cfg.BatchMaxPayloads = 1
	cfg.SpillDir = filepath.Join(t.TempDir(), "spill")
	sink := newGateSink(fileSink(t))
	sink.Close() // PUTs hang until their context ends
	q, err := jobqueue.New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	q.Start(context.Background())
	srv := httptest.NewServer(q.Handle())
	defer srv.Close()
	url := srv.URL
	const collections, size = 50, 20
	for i := range collections {
		if r, err := post(t, nil, url, collection(size, fmt.Sprint(i))); err != nil || r.code != 202 {
			t.Fatal(r, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := q.Drain(ctx); !errors.Is(err, jobqueue.ErrSpilled) {
		t.Fatalf("Drain = %v, want ErrSpilled", err)
	}
	files := 0
	filepath.WalkDir(cfg.SpillDir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if n := spilledLines(t, cfg.SpillDir); n != collections*size {
		t.Fatalf("%d payload lines spilled, want %d", n, collections*size)
	}
	// The batches being uploaded at the deadline (one per worker), then
	// the rest in big spill batches.
	if files > cfg.MaxWorkers+4 {
		t.Fatalf("%d spill files for %d payloads", files, collections*size)
	}
	t.Logf("%d payloads spilled in %d files", collections*size, files)
	sink.Open()
}

// TestRecoveryUploadsOnlyWholeSpilledObjects: at start, the queue uploads
// each object of SPILL_DIR under its own key and removes it; a damaged
// object and files that are not objects are left alone (and not
// uploaded); a temporary file of a process killed while spilling is
// removed once stale, a fresh one kept.
func TestRecoveryUploadsOnlyWholeSpilledObjects(t *testing.T) {
	spill := filepath.Join(t.TempDir(), "spill")
	hour := filepath.Join(spill, "payloads", "2026", "01", "02", "03")
	if err := os.MkdirAll(hour, 0o700); err != nil {
		t.Fatal(err)
	}
	var gzBody bytes.Buffer
	zw := gzip.NewWriter(&gzBody)
	zw.Write([]byte(`{"id":"a","payload":{"n":1}}` + "\n" + `{"id":"b","payload":{"n":2}}` + "\n"))
	zw.Close()
	files := map[string][]byte{
		"x-1.ndjson.gz":         gzBody.Bytes(),
		"x-2.ndjson":            []byte(`{"id":"c","payload":{"n":3}}` + "\n"),
		"x-3.ndjson.gz":         []byte("not gzip"),
		"x-4.ndjson.gz.123.tmp": []byte("stale"),
		"x-5.ndjson.gz.456.tmp": []byte("fresh"),
		"notes.txt":             []byte("mine"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(hour, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(hour, "x-4.ndjson.gz.123.tmp"), old, old)

	cfg := testConfig()
	cfg.SpillDir = spill
	file := fileSink(t)
	q, _ := startQueue(t, cfg, file)
	if err := q.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored := readBucket(t, file.Bucket)
	if len(stored) != 2 || len(stored["payloads/2026/01/02/03/x-1.ndjson.gz"]) != 2 || len(stored["payloads/2026/01/02/03/x-2.ndjson"]) != 1 {
		t.Fatalf("stored %v, want x-1 (2 lines) and x-2 (1 line) under their keys", stored)
	}
	for name, wantThere := range map[string]bool{
		"x-1.ndjson.gz": false, "x-2.ndjson": false, // uploaded, removed
		"x-3.ndjson.gz":         true, // damaged: kept for a human
		"x-4.ndjson.gz.123.tmp": false, "x-5.ndjson.gz.456.tmp": true,
		"notes.txt": true,
	} {
		_, err := os.Stat(filepath.Join(hour, name))
		if there := err == nil; there != wantThere {
			t.Errorf("%s: present %v, want %v", name, there, wantThere)
		}
	}
}
