package jobqueue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/wardgate/wardgate/jobqueue"
)

// memoryStore keeps stored objects in memory. A real embedder uses
// blobsink.Open (file, mem or s3 through gocloud.dev/blob).
type memoryStore struct {
	mu      sync.Mutex
	objects map[string][]byte
}

// Put stores a copy of body: the queue reuses the slice after Put returns.
func (s *memoryStore) Put(_ context.Context, key string, body []byte, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = bytes.Clone(body)
	return nil
}

// Resize is the typed payload of kind "resize".
type Resize struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// Area is what the "resize" handler stores as the payload's result.
type Area struct {
	Pixels int `json:"pixels"`
}

// A queue that stores NDJSON batches in a Sink, with a typed handler for
// payloads of kind "resize": its result is stored next to the payload.
func ExampleNew() {
	cfg := jobqueue.DefaultConfig()
	cfg.MaxWorkers = 1
	cfg.AckMode = jobqueue.AckDurable // 202 once stored
	cfg.Compression = jobqueue.CompressionNone
	sink := &memoryStore{objects: map[string][]byte{}}
	q, err := jobqueue.New(cfg, sink)
	if err != nil {
		panic(err)
	}
	err = q.Register("resize", func(_ context.Context, in Resize) (Area, error) {
		return Area{Pixels: in.Width * in.Height}, nil
	})
	if err != nil {
		panic(err)
	}
	q.Start(context.Background())
	srv := httptest.NewServer(q.Handle())
	defer srv.Close()

	body := `{"version":"1.0","data":[{"kind":"resize","width":640,"height":480}]}`
	resp, err := http.Post(srv.URL+"/v1/payloads", "application/json", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(answer)))

	if err := q.Drain(context.Background()); err != nil {
		panic(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, object := range sink.objects {
		var line struct {
			Payload json.RawMessage `json:"payload"`
			Result  json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(bytes.TrimSpace(object), &line); err != nil {
			panic(err)
		}
		fmt.Printf("payload %s\nresult %s\n", line.Payload, line.Result)
	}
	// Output:
	// 202 {"accepted":1}
	// payload {"kind":"resize","width":640,"height":480}
	// result {"pixels":307200}
}
