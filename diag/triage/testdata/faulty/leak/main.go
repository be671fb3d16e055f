// Command leak handles "notify" payloads by starting a goroutine that
// waits for an acknowledgement nobody ever sends.
package main

import (
	"context"

	"example.com/faulty/svc"
)

type NotifyIn struct {
	Kind string `json:"kind"`
	To   string `json:"to"`
}

type NotifyOut struct {
	Queued bool `json:"queued"`
}

type notifier struct{ sent int }

func (n *notifier) Notify(ctx context.Context, in NotifyIn) (NotifyOut, error) {
	acks := make(chan string)
	go n.awaitAck(in.To, acks)
	n.sent++
	return NotifyOut{Queued: true}, nil
}

// awaitAck is the bug: nothing ever sends on acks, so every notification
// leaves one goroutine behind.
//
//go:noinline
func (n *notifier) awaitAck(to string, acks chan string) {
	ack := <-acks
	_ = to + ack
}

func main() {
	n := &notifier{}
	svc.Run(svc.Service{Name: "leak", Kinds: map[string]any{"notify": n.Notify}})
}
