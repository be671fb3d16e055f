package jobqueue_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/wardgate/wardgate/jobqueue/blobsink"
)

// TestS3ConnectionsCarryNoBatchLabels: workers store a batch under its
// pprof labels (trace_id, span_id), and the S3 connections they open
// outlive the batch; those connections' goroutines must not carry the
// batch's labels (blobsink dials label-free).
func TestS3ConnectionsCarryNoBatchLabels(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("ingest"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	sink, err := blobsink.Open(context.Background(), "s3://ingest?endpoint="+srv.URL+"&region=us-east-1&use_path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	q, url := startQueue(t, testConfig(), sink)
	for range 3 {
		if r, err := post(t, nil, url, collection(30, "s3")); err != nil || r.code != 202 {
			t.Fatal(r, err)
		}
	}
	if err := q.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections() // the test's own connections to the queue

	var b strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		t.Fatal(err)
	}
	conns := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		if !strings.Contains(g, "net/http.(*persistConn)") {
			continue
		}
		conns++
		if strings.Contains(g, "# labels:") {
			t.Errorf("an idle S3 connection goroutine carries a finished batch's labels:\n%s", g)
		}
	}
	if conns == 0 {
		t.Fatal("no idle S3 connection goroutine: the test proves nothing")
	}
}
