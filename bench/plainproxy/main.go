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
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/wardgate/wardgate/bench/internal/benchsrv"
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
	return benchsrv.Serve(ctx, *listen, stdout, p)
}
