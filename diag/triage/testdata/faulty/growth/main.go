// Command growth keeps a "recent payloads" buffer that is never trimmed.
package main

import (
	"context"
	"sync"

	"example.com/faulty/svc"
)

type RememberIn struct {
	Kind string `json:"kind"`
	ID   int    `json:"id"`
}

type recorder struct {
	mu     sync.Mutex
	recent [][]byte
}

func (r *recorder) Record(ctx context.Context, in RememberIn) (*struct{}, error) {
	r.remember(in.ID)
	return nil, nil
}

// remember is the bug: it appends a 256 KiB scratch buffer per payload
// and never drops old ones.
//
//go:noinline
func (r *recorder) remember(id int) {
	buf := make([]byte, 256<<10)
	buf[0] = byte(id)
	r.mu.Lock()
	r.recent = append(r.recent, buf)
	r.mu.Unlock()
}

func main() {
	r := &recorder{}
	svc.Run(svc.Service{Name: "growth", Kinds: map[string]any{"remember": r.Record}})
}
