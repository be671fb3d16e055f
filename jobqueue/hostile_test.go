package jobqueue_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestCollectionLargerThanQueue: a collection with more payloads than
// MAX_QUEUE can never be admitted, so it is a 413 that says so, not a 503
// that a client would retry forever; one that fits the queue but not the
// room left now is still a 503.
func TestCollectionLargerThanQueue(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueue = 5
	sink := newGateSink(fileSink(t))
	sink.Close() // nothing is stored: the budget stays taken
	_, url := startQueue(t, cfg, sink)
	t.Cleanup(sink.Open)

	r, err := post(t, nil, url, collection(6, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if msg := fmt.Sprint(r.body["error"]); r.code != 413 || !strings.Contains(msg, "MAX_QUEUE=5") || r.header.Get("Retry-After") != "" {
		t.Fatalf("6 payloads with MAX_QUEUE=5: %d %q Retry-After %q; want 413 naming MAX_QUEUE, no Retry-After", r.code, msg, r.header.Get("Retry-After"))
	}
	if r, err := post(t, nil, url, collection(5, "fits")); err != nil || r.code != 202 {
		t.Fatalf("5 payloads: %+v %v", r, err)
	}
	if r, err := post(t, nil, url, collection(1, "later")); err != nil || r.code != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("1 payload with the queue full: %+v %v; want 503 + Retry-After", r, err)
	}
}
