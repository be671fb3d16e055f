// Command hungio enriches payloads by calling a geo service with an HTTP
// client that has no timeout; the geo service accepts and never answers.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"example.com/faulty/svc"
)

type EnrichIn struct {
	Kind string `json:"kind"`
	IP   string `json:"ip"`
}

type EnrichOut struct {
	Country string `json:"country"`
}

type enricher struct {
	client *http.Client
	geo    string
}

func (e *enricher) Enrich(ctx context.Context, in EnrichIn) (EnrichOut, error) {
	c, err := e.lookup(in.IP)
	return EnrichOut{Country: c}, err
}

// lookup is the bug: http.Client{} has no Timeout and the request no
// deadline, so a dependency that never answers hangs it forever.
//
//go:noinline
func (e *enricher) lookup(ip string) (string, error) {
	resp, err := e.client.Get(e.geo + "/country?ip=" + ip)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// deadDependency accepts connections and never answers.
func deadDependency() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return fmt.Sprintf("http://%s", ln.Addr())
}

func main() {
	e := &enricher{client: &http.Client{}, geo: deadDependency()}
	svc.Run(svc.Service{Name: "hungio", Kinds: map[string]any{"enrich": e.Enrich}})
}
