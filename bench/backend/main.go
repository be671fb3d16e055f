// Command backend is the upstream of the proxy benchmarks (bench/proxies.sh):
// every request gets the same small body, so what is measured is the proxy in
// front of it, not the backend. Two of these run side by side on loopback and
// every proxy balances over the same two.
//
// It prints "listening ADDR" on stdout once it accepts, so scripts can start
// it on port 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/wardgate/wardgate/bench/internal/benchsrv"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	size := fs.Int("size", 64, "response body size in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 0 {
		return fmt.Errorf("--size must be >= 0, got %d", *size)
	}
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	if len(body) > 0 {
		body[len(body)-1] = '\n'
	}
	clen := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Drain the body so keep-alive connections stay reusable.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", clen)
		_, _ = w.Write(body)
	})
	return benchsrv.Serve(ctx, *listen, stdout, h)
}
