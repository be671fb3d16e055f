package jobqueue_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
)

func TestStatusTable(t *testing.T) {
	cfg := testConfig()
	cfg.APITokens = []string{"tok", "other"}
	cfg.MaxLength = 1024
	_, url := startQueue(t, cfg, fileSink(t))
	big := collection(100, strings.Repeat("x", 20)) // > 1 KiB

	for _, tc := range []struct {
		name    string
		method  string
		ct      string
		body    string
		hdr     []string
		chunked bool
		code    int
		errHas  string
	}{
		{name: "ok", body: string(collection(3, "a")), code: 202},
		{name: "bearer header instead of token field", body: `{"data":[{"a":1}]}`, hdr: []string{"Authorization", "Bearer other"}, code: 202},
		{name: "json with charset", ct: "application/json; charset=utf-8", body: string(collection(1, "a")), code: 202},
		{name: "empty data", body: `{"token":"tok","data":[]}`, code: 202},
		{name: "truncated JSON", body: `{"token":"tok","data":[{"a":1}`, code: 400, errHas: "malformed JSON"},
		{name: "data missing", body: `{"token":"tok"}`, code: 400, errHas: "data is missing"},
		{name: "data not array", body: `{"token":"tok","data":{"a":1}}`, code: 400, errHas: "data must be an array"},
		{name: "element not object", body: `{"token":"tok","data":[{"a":1},"x"]}`, code: 400, errHas: "data[1] is not an object"},
		{name: "oversized", body: string(big), code: 413, errHas: "MAX_LENGTH"},
		{name: "oversized chunked", body: string(big), chunked: true, code: 413, errHas: "MAX_LENGTH"},
		{name: "text/plain", ct: "text/plain", body: string(collection(1, "a")), code: 415},
		{name: "no content type", ct: "-", body: string(collection(1, "a")), code: 415},
		{name: "GET", method: "GET", code: 405},
		{name: "PUT", method: "PUT", body: string(collection(1, "a")), code: 405},
		{name: "unknown token", body: `{"token":"nope","data":[{"a":1}]}`, code: 401},
		{name: "no token", body: `{"data":[{"a":1}]}`, code: 401},
		{name: "bad bearer", body: `{"data":[{"a":1}]}`, hdr: []string{"Authorization", "Bearer nope"}, code: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "POST"
			}
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: chunked encoding
			}
			req, _ := http.NewRequest(method, url+"/v1/payloads", body)
			switch tc.ct {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.ct)
			}
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, raw, tc.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.code == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q", resp.Header.Get("Allow"))
			}
			if tc.code >= 400 && !strings.Contains(string(raw), `"error"`) {
				t.Errorf("error body %s", raw)
			}
			if tc.errHas != "" && !strings.Contains(string(raw), tc.errHas) {
				t.Errorf("body %s does not say %q", raw, tc.errHas)
			}
		})
	}

	t.Run("body cut short by the client", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		part := `{"token":"tok","data":[{"a":1},`
		fmt.Fprintf(conn, "POST /v1/payloads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n%s", part)
		conn.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
	})
}

// TestStoreDownThenUp: while every PUT fails the queue fills and ingest
// answers 503 + Retry-After; once the store is back everything acked is
// stored, exactly once.
func TestStoreDownThenUp(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueue = 500
	cfg.BatchMaxPayloads = 50
	file := fileSink(t)
	sink := newGateSink(file)
	sink.down.Store(true)
	q, url := startQueue(t, cfg, sink)

	acked, full := 0, 0
	for i := 0; i < 200 && full < 5; i++ {
		r, err := post(t, nil, url, collection(10, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		switch r.code {
		case 202:
			acked += 10
		case 503:
			full++
			if r.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		default:
			t.Fatalf("status %d %v", r.code, r.body)
		}
	}
	if full == 0 || acked != cfg.MaxQueue {
		t.Fatalf("store down: acked %d payloads (want MAX_QUEUE=%d), %d answers 503 (want some)", acked, cfg.MaxQueue, full)
	}
	if got := countLines(readBucket(t, file.Bucket)); got != 0 {
		t.Fatalf("%d lines stored while the store was down", got)
	}

	sink.down.Store(false)
	waitFor(t, "the queue to accept again", func() bool {
		r, err := post(t, nil, url, collection(10, "after"))
		if err != nil {
			t.Fatal(err)
		}
		if r.code == 202 {
			acked += 10
		}
		return r.code == 202
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := q.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	objs := readBucket(t, file.Bucket)
	ids := map[string]bool{}
	for _, ls := range objs {
		for _, l := range ls {
			if ids[l.ID] {
				t.Fatalf("payload %s stored twice", l.ID)
			}
			ids[l.ID] = true
		}
	}
	if len(ids) != acked {
		t.Fatalf("%d payloads stored, %d acked", len(ids), acked)
	}
}

// TestDrainRefusesAndFinishes: during a drain /readyz and new posts answer
// 503, and Drain returns only once what was acked is stored.
func TestDrainRefusesAndFinishes(t *testing.T) {
	cfg := testConfig()
	file := fileSink(t)
	sink := newGateSink(file)
	sink.Close() // PUTs block
	q, url := startQueue(t, cfg, sink)
	for range 5 {
		if r, err := post(t, nil, url, collection(10, "d")); err != nil || r.code != 202 {
			t.Fatalf("%v %v", r, err)
		}
	}
	drained := make(chan error, 1)
	go func() { drained <- q.Drain(context.Background()) }()
	waitFor(t, "/readyz to turn 503", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	r, err := post(t, nil, url, collection(1, "late"))
	if err != nil || r.code != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(r.body["error"]), "draining") {
		t.Fatalf("post while draining: %+v %v", r, err)
	}
	if resp, err := http.Get(url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz while draining: %v %v", resp, err)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while uploads were blocked", err)
	default:
	}
	sink.Open()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if got := countLines(readBucket(t, file.Bucket)); got != 50 {
		t.Fatalf("%d stored, want 50", got)
	}
}

// TestDrainDeadline: with the store down and a drain deadline, Drain gives
// up and says how many acked payloads were not stored; a durable client is
// not told 202.
func TestDrainDeadline(t *testing.T) {
	cfg := testConfig()
	cfg.AckMode = jobqueue.AckDurable
	sink := newGateSink(fileSink(t))
	sink.down.Store(true)
	q, err := jobqueue.New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	q.Start(context.Background())
	srv := httptest.NewServer(q.Handle())
	defer srv.Close()
	answer := make(chan response, 1)
	go func() {
		r, _ := post(t, nil, srv.URL, collection(7, "x"))
		answer <- r
	}()
	waitFor(t, "a failed PUT", func() bool { return len(sink.calls) > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = q.Drain(ctx)
	if err == nil || !strings.Contains(err.Error(), "7 acked payloads not stored") {
		t.Fatalf("Drain = %v", err)
	}
	if r := <-answer; r.code != 503 {
		t.Fatalf("durable client got %d, want 503", r.code)
	}
}

// TestDurableAckWaitsForStore: in durable mode the 202 comes only after the
// PUT that stores the collection has returned.
func TestDurableAckWaitsForStore(t *testing.T) {
	cfg := testConfig()
	cfg.AckMode = jobqueue.AckDurable
	file := fileSink(t)
	sink := newGateSink(file)
	sink.Close()
	_, url := startQueue(t, cfg, sink)
	answer := make(chan response, 1)
	go func() {
		r, err := post(t, nil, url, collection(5, "durable"))
		if err != nil {
			t.Error(err)
		}
		answer <- r
	}()
	<-sink.calls // the batch is at the store, which does not answer yet
	select {
	case r := <-answer:
		t.Fatalf("answered %d before the payloads were stored", r.code)
	default:
	}
	// The waiting request goroutine and the uploading worker both carry
	// pprof labels that name their trace (what diag goroutines shows).
	var prof strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&prof, 1); err != nil {
		t.Fatal(err)
	}
	reqLabels := regexp.MustCompile(`# labels: \{"http_route":"/v1/payloads", "span_id":"[0-9a-f]{16}", "trace_id":"[0-9a-f]{32}"\}`)
	workerLabels := regexp.MustCompile(`# labels: \{"span_id":"[0-9a-f]{16}", "trace_id":"[0-9a-f]{32}"\}(?s:.)*?\(\*Queue\)\.worker`)
	if !reqLabels.MatchString(prof.String()) || !workerLabels.MatchString(prof.String()) {
		t.Errorf("goroutine profile lacks request or worker labels:\n%s", prof.String())
	}
	sink.Open()
	if r := <-answer; r.code != 202 || r.body["accepted"] != float64(5) {
		t.Fatalf("%+v", r)
	}
	if got := countLines(readBucket(t, file.Bucket)); got != 5 {
		t.Fatalf("%d lines stored at the 202, want 5", got)
	}
}

// TestGoroutinesFlatUnderOverload: with the store stuck and 16x MAX_QUEUE
// payloads offered, the goroutine count depends on the number of clients,
// not on queued jobs, and handlers never block on a full queue.
func TestGoroutinesFlatUnderOverload(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueue = 1000
	cfg.MaxWorkers = 4
	file := fileSink(t)
	sink := newGateSink(file)
	sink.Close()
	q, url := startQueue(t, cfg, sink)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()

	base := runtime.NumGoroutine()
	var maxG atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(runtime.NumGoroutine()); n > maxG.Load() {
				maxG.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	const clients, perClient, size = 16, 100, 10 // 16,000 payloads offered
	var acked, refused atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				r, err := post(t, client, url, collection(size, fmt.Sprint(c, "-", i)))
				if err != nil {
					t.Error(err)
					return
				}
				switch r.code {
				case 202:
					acked.Add(size)
				case 503:
					refused.Add(1)
				default:
					t.Errorf("status %d", r.code)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	if acked.Load() != int64(cfg.MaxQueue) || refused.Load() == 0 {
		t.Fatalf("acked %d (want MAX_QUEUE=%d), refused %d", acked.Load(), cfg.MaxQueue, refused.Load())
	}
	// Per client: its goroutine, a transport read and write loop, a server
	// connection. Plus workers, the sampler and slack for the runtime and
	// test framework. A goroutine per queued job would be >= 1000.
	bound := int64(base + clients*5 + cfg.MaxWorkers + 60)
	if maxG.Load() > bound {
		t.Fatalf("goroutines peaked at %d with %d queued payloads; bound %d (base %d)", maxG.Load(), cfg.MaxQueue, bound, base)
	}
	t.Logf("goroutines: base %d, peak %d, bound %d; acked %d, refused %d requests", base, maxG.Load(), bound, acked.Load(), refused.Load())
	sink.Open()
	if err := q.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countLines(readBucket(t, file.Bucket)); got != int(acked.Load()) {
		t.Fatalf("stored %d, acked %d", got, acked.Load())
	}
}

// TestOnePayloadPerObject: BATCH_MAX_PAYLOADS=1 and no compression give the
// design notes' layout, one .ndjson object per payload, under the hour of
// the (injected) clock.
func TestOnePayloadPerObject(t *testing.T) {
	cfg := testConfig()
	cfg.BatchMaxPayloads = 1
	cfg.Compression = jobqueue.CompressionNone
	file := fileSink(t)
	at := time.Date(2024, 3, 5, 7, 30, 0, 0, time.UTC)
	q, url := startQueue(t, cfg, file, jobqueue.WithClock(func() time.Time { return at }))
	for range 3 {
		if r, err := post(t, nil, url, collection(4, "one")); err != nil || r.code != 202 {
			t.Fatal(r, err)
		}
	}
	if err := q.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	objs := readBucket(t, file.Bucket)
	if len(objs) != 12 {
		t.Fatalf("%d objects, want 12", len(objs))
	}
	re := regexp.MustCompile(`^payloads/2024/03/05/07/test-\d+\.ndjson$`)
	for key, lines := range objs {
		if !re.MatchString(key) || len(lines) != 1 {
			t.Errorf("%s: %d lines", key, len(lines))
		}
		if lines[0].ReceivedAt != "2024-03-05T07:30:00Z" {
			t.Errorf("received_at %q", lines[0].ReceivedAt)
		}
	}
}

// TestS3 stores through s3:// against an in-process S3 server (gofakes3)
// over real HTTP with path-style addressing, and checks that the SDK's
// default checksum headers, which S3-compatible stores reject, are off.
func TestS3(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("ingest"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	var puts, checksummed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			puts.Add(1)
			for k := range r.Header {
				if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") || strings.EqualFold(k, "x-amz-sdk-checksum-algorithm") {
					checksummed.Add(1)
				}
			}
		}
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	sink, err := blobsink.Open(context.Background(), "s3://ingest?endpoint="+srv.URL+"&region=us-east-1&use_path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cfg := testConfig()
	q, url := startQueue(t, cfg, sink)
	for range 10 {
		if r, err := post(t, nil, url, collection(30, "s3")); err != nil || r.code != 202 {
			t.Fatal(r, err)
		}
	}
	if err := q.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countLines(readBucket(t, sink.Bucket)); got != 300 {
		t.Fatalf("%d lines in the bucket, want 300", got)
	}
	if puts.Load() == 0 || checksummed.Load() != 0 {
		t.Fatalf("%d PUTs, %d with SDK checksum headers", puts.Load(), checksummed.Load())
	}
}
