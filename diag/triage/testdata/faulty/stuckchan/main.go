// Command stuckchan prices payloads by asking a pricing goroutine over a
// channel; the pricing goroutine gives up after its first quote, so every
// later quote waits for an answer forever.
package main

import (
	"context"

	"example.com/faulty/svc"
)

type PriceIn struct {
	Kind string `json:"kind"`
	N    int    `json:"n"`
}

type PriceOut struct {
	Price int `json:"price"`
}

type pricer struct {
	requests chan chan int
}

// serve answers one quote, then returns: the bug's other half.
func (p *pricer) serve() {
	reply := <-p.requests
	reply <- 42
}

func (p *pricer) Price(ctx context.Context, in PriceIn) (PriceOut, error) {
	return PriceOut{Price: p.quote(in.N)}, nil
}

// quote is the bug: it waits for the answer without a timeout or ctx.
//
//go:noinline
func (p *pricer) quote(n int) int {
	reply := make(chan int)
	p.requests <- reply
	return <-reply + n
}

func main() {
	p := &pricer{requests: make(chan chan int, 1)}
	go p.serve()
	svc.Run(svc.Service{Name: "stuckchan", Kinds: map[string]any{"price": p.Price}})
}
