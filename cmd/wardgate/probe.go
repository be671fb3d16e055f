package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runProbe is a container healthcheck for images without curl: GET a URL
// and exit 0 on a 2xx answer, 1 otherwise.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: wardgate probe [--timeout D] URL\n\nGET URL; exit 0 on a 2xx answer, 1 otherwise (a healthcheck for images without curl).")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(stderr, fs.Name(), "want exactly one URL, got %d arguments", fs.NArg())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		fmt.Fprintln(stderr, "probe:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "probe:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(stderr, "probe: %s: %s\n", fs.Arg(0), resp.Status)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s\n", fs.Arg(0), resp.Status)
	return 0
}
