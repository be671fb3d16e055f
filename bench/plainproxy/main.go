// Command plainproxy is the floor of the proxy benchmarks: what a Go
// programmer gets from net/http/httputil.ReverseProxy with default settings
// (http.DefaultTransport, so 2 idle connections per host), round robin over
// the targets, nothing else. wardgate is built on the same ReverseProxy;
// the gap between the two is what its transport and pooling settings buy
// and what its middleware, metrics and spans cost.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "plainproxy:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("plainproxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	targets := fs.String("targets", "", "comma-separated upstream URLs (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var urls []*url.URL
	for _, s := range strings.Split(*targets, ",") {
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fmt.Errorf("--targets: bad URL %q", s)
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return fmt.Errorf("--targets: at least one URL required")
	}
	var next atomic.Uint64
	p := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(urls[next.Add(1)%uint64(len(urls))])
		pr.SetXForwarded()
	}}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: p}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
