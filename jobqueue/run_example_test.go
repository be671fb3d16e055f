package jobqueue_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/wardgate/wardgate/jobqueue"
)

// The lifecycle of a job-queue process, as `wardgate jobqueue` runs it:
// settings from the environment, listeners opened first, Run until the
// context ends, then a drain that stores every acknowledged payload.
func ExampleQueue_Run() {
	env := map[string]string{"LISTEN": "127.0.0.1:0", "MAX_WORKERS": "2", "ACK_MODE": "durable", "COMPRESSION": "none", "SPILL_DIR": "off"}
	s, err := jobqueue.SettingsFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		panic(err)
	}
	pub, err := net.Listen("tcp", s.Listen)
	if err != nil {
		panic(err)
	}
	sink := &memoryStore{objects: map[string][]byte{}}
	q, err := jobqueue.New(s.Config, sink)
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error)
	go func() {
		done <- q.Run(ctx, jobqueue.RunOptions{Public: pub, DrainTimeout: s.DrainTimeout, Ready: func() { close(ready) }})
	}()
	<-ready
	resp, err := http.Post("http://"+pub.Addr().String()+"/v1/payloads", "application/json",
		strings.NewReader(`{"version":"1.0","data":[{"kind":"scan","n":1},{"kind":"scan","n":2}]}`))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("POST:", resp.StatusCode)

	stop() // SIGTERM in the command
	fmt.Println("Run:", <-done)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, object := range sink.objects {
		fmt.Println("stored payloads:", strings.Count(string(object), "\n"))
	}
	// Output:
	// POST: 202
	// Run: <nil>
	// stored payloads: 2
}
