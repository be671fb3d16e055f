// Command crashmap keeps upload statistics in a plain map written by every
// worker at once: the runtime stops it with "concurrent map writes".
package main

import (
	"context"
	"strconv"

	"example.com/faulty/svc"
)

type statsSink struct {
	sizes map[string]int
}

func (s *statsSink) Put(ctx context.Context, key string, body []byte, ct string) error {
	s.record(key, len(body))
	return nil
}

// record is the bug: no lock around the map.
//
//go:noinline
func (s *statsSink) record(key string, size int) {
	for i := 0; i < 10000; i++ {
		s.sizes[key+strconv.Itoa(i%64)] = size + i
	}
}

func main() {
	svc.Run(svc.Service{Name: "crashmap", Sink: &statsSink{sizes: map[string]int{}}})
}
