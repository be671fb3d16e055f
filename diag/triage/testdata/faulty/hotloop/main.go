// Command hotloop scores every payload with a loop that runs far longer
// than it should.
package main

import (
	"context"

	"example.com/faulty/svc"
)

type ScoreIn struct {
	Kind string `json:"kind"`
	N    int    `json:"n"`
}

type ScoreOut struct {
	Score uint64 `json:"score"`
}

type scorer struct{}

func (s *scorer) Score(ctx context.Context, in ScoreIn) (ScoreOut, error) {
	return ScoreOut{Score: s.score(in.N)}, nil
}

// score is the bug: 200 million rounds per payload.
//
//go:noinline
func (s *scorer) score(n int) uint64 {
	h := uint64(n)
	for i := 0; i < 200_000_000; i++ {
		h = h*31 + uint64(i)
		h ^= h >> 7
	}
	return h
}

func main() {
	s := &scorer{}
	svc.Run(svc.Service{Name: "hotloop", Kinds: map[string]any{"score": s.Score}})
}
