// Command deadlock stores payloads through a ledger sink that moves a
// balance between two accounts, locking them in opposite orders on
// alternate calls: two concurrent uploads deadlock.
package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"example.com/faulty/svc"
)

type account struct {
	mu      sync.Mutex
	balance int
}

type ledgerSink struct {
	a, b *account
	n    atomic.Int64
}

func (s *ledgerSink) Put(ctx context.Context, key string, body []byte, ct string) error {
	if s.n.Add(1)%2 == 0 {
		s.transfer(s.a, s.b, len(body))
	} else {
		s.transfer(s.b, s.a, len(body))
	}
	return nil
}

// transfer is the bug: it locks from, then to; a concurrent transfer the
// other way round locks them in the opposite order.
//
//go:noinline
func (s *ledgerSink) transfer(from, to *account, amount int) {
	from.mu.Lock()
	defer from.mu.Unlock()
	time.Sleep(50 * time.Millisecond) // widen the window
	to.mu.Lock()
	defer to.mu.Unlock()
	from.balance -= amount
	to.balance += amount
}

func main() {
	svc.Run(svc.Service{Name: "deadlock", Sink: &ledgerSink{a: &account{}, b: &account{}}})
}
