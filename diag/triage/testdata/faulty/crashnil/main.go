// Command crashnil stores batches through a sink that indexes every key in
// an index it never created: the first upload crashes the process.
package main

import (
	"context"

	"example.com/faulty/svc"
)

type index struct {
	keys  map[string]int
	count int
}

// add is the bug: idx is nil.
//
//go:noinline
func (idx *index) add(key string, size int) {
	idx.count++
	idx.keys[key] = size
}

type indexSink struct {
	idx *index // never set
}

func (s *indexSink) Put(ctx context.Context, key string, body []byte, ct string) error {
	s.idx.add(key, len(body))
	return nil
}

func main() {
	svc.Run(svc.Service{Name: "crashnil", Sink: &indexSink{}})
}
