package e2e

import (
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
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"

	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
)

// hangingListener accepts connections on addr, reads them and never
// answers: an S3 endpoint that hangs. stop closes it and its connections.
func hangingListener(t *testing.T, addr string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ln.Close()
			<-done
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// metric reads one counter from the process's admin /metrics.
func metric(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	code, body := testutil.Get(context.Background(), http.DefaultClient, p.Admin+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestHungStoreSpillThenRestore is issue 13's scenario with real
// processes: the S3 endpoint accepts and never answers. PUTs time out as
// counted errors; payloads are acked (enqueued); SIGTERM's drain deadline
// passes and the process exits 0 after spilling them to SPILL_DIR. The
// store comes back on the same address; a new process on the same
// SPILL_DIR uploads them first; every acked payload is then in the store
// exactly once and SPILL_DIR is empty.
func TestHungStoreSpillThenRestore(t *testing.T) {
	addr, stopHung := hangingListener(t, "127.0.0.1:0")
	spill := filepath.Join(t.TempDir(), "spill")
	env := []string{
		"BLOB_URL=s3://ingest?endpoint=http://" + addr + "&region=us-east-1&use_path_style=true",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"ACK_MODE=enqueued", "SPILL_DIR=" + spill, "BLOB_PUT_TIMEOUT=500ms", "DRAIN_TIMEOUT=3s",
		"BATCH_MAX_WAIT=20ms", "BATCH_MAX_PAYLOADS=60", "MAX_WORKERS=2", "INSTANCE=e2e",
	}
	p := start(t, env)
	acked := map[string]bool{}
	for i := range 40 {
		tag := fmt.Sprint("c", i)
		code, err := postCollection(http.DefaultClient, p.Public, 25, tag)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("post %d: %d %v", i, code, err)
		}
		for j := range 25 {
			acked[fmt.Sprintf(`{"tag":%q,"i":%d}`, tag, j)] = true
		}
	}
	testutil.Eventually(context.Background(), t, time.Minute, 20*time.Millisecond, "hung PUTs counted as timed-out errors", func() (bool, string) {
		to, errs := metric(t, p, "wardgate_blob_put_timeouts_total"), metric(t, p, "wardgate_blob_put_errors_total")
		return to >= 1 && errs >= to, fmt.Sprintf("timeouts %v errors %v", to, errs)
	})
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := wait(t, p); code != 0 {
		t.Fatalf("exit code %d after the drain deadline with SPILL_DIR\n%s", code, p.Stderr)
	}
	if !strings.Contains(p.Stderr.String(), "spilled to local disk") {
		t.Errorf("no spill log line:\n%s", p.Stderr)
	}
	if n := storedLines(t, spill); n != len(acked) {
		t.Fatalf("%d payload lines in SPILL_DIR, %d acked\n%s", n, len(acked), p.Stderr)
	}

	// The store comes back on the same address.
	stopHung()
	backend := s3mem.New()
	if err := backend.CreateBucket("ingest"); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	testutil.Eventually(context.Background(), t, time.Minute, 20*time.Millisecond, "the store's address free again", func() (bool, string) {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil, fmt.Sprint(err)
	})
	srv := httptest.NewUnstartedServer(gofakes3.New(backend).Server())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	p2 := start(t, env)
	testutil.Eventually(context.Background(), t, 2*time.Minute, 20*time.Millisecond, "SPILL_DIR emptied", func() (bool, string) {
		n := 0
		filepath.WalkDir(spill, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n == 0, fmt.Sprintf("%d files left", n)
	})
	if got := metric(t, p2, "wardgate_payloads_recovered_total"); got != float64(len(acked)) {
		t.Errorf("recovered metric %v, want %d", got, len(acked))
	}
	p2.Cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(t, p2); code != 0 {
		t.Fatalf("second run exit %d\n%s", code, p2.Stderr)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	sink, err := blobsink.Open(context.Background(), "s3://ingest?endpoint="+srv.URL+"&region=us-east-1&use_path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	seen := map[string]int{}
	for _, line := range bucketLines(t, sink.Bucket) {
		seen[payloadOf(t, line)]++
	}
	for pl := range acked {
		if seen[pl] != 1 {
			t.Errorf("acked payload %s stored %d times", pl, seen[pl])
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("%d distinct payloads stored, %d acked", len(seen), len(acked))
	}
}

// bucketLines returns every NDJSON line of every object in b.
func bucketLines(t *testing.T, b *blob.Bucket) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	it := b.List(nil)
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
		if data, err = testutil.Decompress(obj.Key, data); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")...)
	}
	return out
}

var payloadField = regexp.MustCompile(`"payload":(\{[^}]*\})`)

func payloadOf(t *testing.T, line string) string {
	t.Helper()
	m := payloadField.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("line without a payload: %s", line)
	}
	return m[1]
}
