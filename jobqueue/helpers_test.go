package jobqueue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
)

// testConfig is small and fast: short batch waits and retry backoff.
func testConfig() jobqueue.Config {
	c := jobqueue.DefaultConfig()
	c.MaxWorkers = 4
	c.MaxQueue = 10_000
	c.BatchMaxPayloads = 100
	c.BatchMaxWait = 20 * time.Millisecond
	c.RetryBase = 5 * time.Millisecond
	c.RetryMax = 50 * time.Millisecond
	c.Instance = "test"
	return c
}

// fileSink opens a real file:// blob sink in a temp dir.
func fileSink(t *testing.T) *blobsink.Sink {
	t.Helper()
	s, err := blobsink.Open(context.Background(), "file://"+t.TempDir()+"/blobs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startQueue serves q.Handle on a real loopback listener.
func startQueue(t *testing.T, cfg jobqueue.Config, sink jobqueue.Sink, opts ...jobqueue.Option) (*jobqueue.Queue, string) {
	t.Helper()
	q, err := jobqueue.New(cfg, sink, opts...)
	if err != nil {
		t.Fatal(err)
	}
	q.Start(context.Background())
	srv := httptest.NewServer(q.Handle())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := q.Drain(ctx); err != nil {
			t.Errorf("drain: %v", err)
		}
		srv.Close()
	})
	return q, srv.URL
}

func collection(n int, tag string) []byte {
	var b strings.Builder
	b.WriteString(`{"version":"10.0.19045","token":"tok","data":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"tag":%q,"i":%d}`, tag, i)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

type response struct {
	code   int
	header http.Header
	body   map[string]any
}

func post(t testing.TB, client *http.Client, url string, body []byte, hdr ...string) (response, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/payloads", bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	r := response{code: resp.StatusCode, header: resp.Header}
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			return r, fmt.Errorf("answer %d is not JSON: %q", resp.StatusCode, raw)
		}
	}
	return r, nil
}

// line is one stored payload line.
type line struct {
	ID         string          `json:"id"`
	ReceivedAt string          `json:"received_at"`
	TraceID    string          `json:"trace_id"`
	Version    string          `json:"version"`
	Payload    json.RawMessage `json:"payload"`
	Result     json.RawMessage `json:"result"`
	Error      string          `json:"error"`
}

// readBucket returns every stored line by object key.
func readBucket(t testing.TB, b *blob.Bucket) map[string][]line {
	t.Helper()
	ctx := context.Background()
	out := map[string][]line{}
	it := b.List(&blob.ListOptions{})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[obj.Key] = parseObject(t, obj.Key, data)
	}
	return out
}

func parseObject(t testing.TB, key string, data []byte) []line {
	t.Helper()
	data, err := testutil.Decompress(key, data)
	if err != nil {
		t.Fatal(err)
	}
	var lines []line
	for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		var ln line
		if err := json.Unmarshal(l, &ln); err != nil {
			t.Fatalf("%s: line %q: %v", key, l, err)
		}
		lines = append(lines, ln)
	}
	return lines
}

func countLines(objs map[string][]line) int {
	n := 0
	for _, ls := range objs {
		n += len(ls)
	}
	return n
}

// gateSink wraps a sink: while closed, Put blocks until the gate opens or
// ctx ends; failN makes the next N Puts fail.
type gateSink struct {
	inner jobqueue.Sink
	mu    sync.Mutex
	open  chan struct{}
	fail  int
	down  atomic.Bool // while set, every Put fails
	puts  int
	calls chan string
}

func newGateSink(inner jobqueue.Sink) *gateSink {
	g := &gateSink{inner: inner, open: make(chan struct{}), calls: make(chan string, 1<<16)}
	close(g.open)
	return g
}

func (g *gateSink) Close() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gateSink) Open() {
	g.mu.Lock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
	g.mu.Unlock()
}

func (g *gateSink) Put(ctx context.Context, key string, body []byte, ct string) error {
	select {
	case g.calls <- key:
	default:
	}
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.down.Load() {
		return errors.New("store down (injected)")
	}
	g.mu.Lock()
	g.puts++
	if g.fail > 0 {
		g.fail--
		g.mu.Unlock()
		return errors.New("store down (injected)")
	}
	g.mu.Unlock()
	return g.inner.Put(ctx, key, body, ct)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(context.Background(), t, 60*time.Second, 5*time.Millisecond, what,
		func() (bool, string) { return cond(), "" })
}
