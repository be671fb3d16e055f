// Command stuckqueue stores batches through a rate-limited sink whose
// refill loop stops after the first second: every upload then waits for a
// token forever and the queue fills up.
package main

import (
	"context"
	"time"

	"example.com/faulty/svc"
	"github.com/wardgate/wardgate/jobqueue"
)

type throttledSink struct {
	tokens chan struct{}
}

// Put is the bug: it waits for a token with no deadline, and nobody
// refills them.
//
//go:noinline
func (s *throttledSink) Put(ctx context.Context, key string, body []byte, ct string) error {
	<-s.tokens
	return nil
}

func (s *throttledSink) refill() {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		select {
		case s.tokens <- struct{}{}:
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Meant to loop forever; returns after a second.
}

func main() {
	s := &throttledSink{tokens: make(chan struct{}, 1)}
	go s.refill()
	svc.Run(svc.Service{Name: "stuckqueue", Sink: s, Config: func(c *jobqueue.Config) { c.MaxQueue = 200 }})
}
