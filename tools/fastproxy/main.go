// Command fastproxy is a reference point for the proxy benchmarks
// (bench/proxies.sh): a minimal reverse proxy on github.com/valyala/fasthttp
// instead of net/http. The product SPEC requires the gateway to be built on
// net/http and httputil.ReverseProxy; this program answers "what would a Go
// proxy that is NOT built on net/http reach on the same machine?", so the
// SPEC can be weighed against a measured figure. It is not part of wardgate
// and lives in its own module so the product's go.mod does not depend on
// fasthttp.
//
// It does what a real proxy must do and no more: round robin over the
// targets with one keep-alive fasthttp.HostClient per target (per request,
// not per connection), hop-by-hop headers stripped both ways (the fixed
// RFC 9110 list plus every header the Connection header names),
// X-Forwarded-For appended with the client address and X-Forwarded-Host /
// X-Forwarded-Proto set (what httputil.ProxyRequest.SetXForwarded does),
// Host set to the target (what ProxyRequest.SetURL does), 502 when the
// target cannot be reached. Unlike net/http it buffers whole request and
// response bodies (fasthttp's default, limited to -max-body) and does not
// proxy protocol upgrades (WebSocket): fine for the benchmark's GET of a
// small body, not for a product.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "fastproxy:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fastproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port; the address is printed as \"listening ADDR\")")
	targets := fs.String("targets", "", "comma-separated upstream URLs, http:// only (required), e.g. http://127.0.0.1:8081,http://127.0.0.1:8082")
	maxConns := fs.Int("max-conns", 1024, "maximum connections to each target")
	maxBody := fs.Int("max-body", 4<<20, "maximum request body size in bytes (fasthttp buffers whole bodies)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: fastproxy -targets URL[,URL...] [-listen ADDR]\n\nA fasthttp reverse proxy used as a reference in bench/proxies.sh (round robin, keep-alive, X-Forwarded-For).\n\nFlags:")
		fs.PrintDefaults()
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(stdout)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *maxConns < 1 {
		return fmt.Errorf("-max-conns: must be at least 1, got %d", *maxConns)
	}
	hosts, err := parseTargets(*targets)
	if err != nil {
		return err
	}
	p := newProxy(hosts, *maxConns)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())

	srv := &fasthttp.Server{
		Handler:               p.serve,
		Name:                  "fastproxy",
		NoDefaultServerHeader: true,
		// The upstream's Date header is passed through; fasthttp would add a
		// second one.
		NoDefaultDate:      true,
		MaxRequestBodySize: *maxBody,
		IdleTimeout:        90 * time.Second,
		ReadTimeout:        60 * time.Second,
		WriteTimeout:       60 * time.Second,
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// parseTargets turns "http://a:1,http://b:2" into host:port addresses.
func parseTargets(s string) ([]string, error) {
	var hosts []string
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		u, err := url.Parse(t)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("-targets: bad URL %q", t)
		}
		if u.Scheme != "http" {
			return nil, fmt.Errorf("-targets: %q: only http:// targets are supported", t)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("-targets: %q: a path prefix is not supported", t)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		hosts = append(hosts, host)
	}
	if len(hosts) == 0 {
		return nil, errors.New("-targets: at least one URL required")
	}
	return hosts, nil
}

// proxy forwards each request to the next target in turn.
type proxy struct {
	clients []*fasthttp.HostClient
	next    atomic.Uint64
}

func newProxy(hosts []string, maxConns int) *proxy {
	p := &proxy{}
	for _, h := range hosts {
		p.clients = append(p.clients, &fasthttp.HostClient{
			Addr:                h,
			MaxConns:            maxConns,
			MaxIdleConnDuration: 90 * time.Second,
			ReadTimeout:         30 * time.Second,
			WriteTimeout:        30 * time.Second,
			// Header names and bodies go through untouched, like a proxy.
			DisableHeaderNamesNormalizing: true,
			NoDefaultUserAgentHeader:      true,
		})
	}
	return p
}

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1 and the
// ones net/http/httputil removes too; they describe one connection and must
// not be forwarded.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// header is what fasthttp's request and response headers share.
type header interface {
	Peek(key string) []byte
	Del(key string)
}

// stripHop removes the hop-by-hop headers and every header the Connection
// header names.
func stripHop(h header) {
	if c := h.Peek("Connection"); len(c) > 0 {
		for _, name := range bytes.Split(c, []byte{','}) {
			if name = bytes.TrimSpace(name); len(name) > 0 {
				h.Del(string(name))
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

func (p *proxy) serve(ctx *fasthttp.RequestCtx) {
	hc := p.clients[(p.next.Add(1)-1)%uint64(len(p.clients))]
	req := &ctx.Request
	// The server has already noted whether the client asked to close its
	// connection; deleting Connection here only keeps the upstream
	// connection alive.
	stripHop(&req.Header)

	host := string(req.Host())
	req.Header.Set("X-Forwarded-Host", host)
	req.Header.Set("X-Forwarded-Proto", "http")
	clientIP := ctx.RemoteIP().String()
	if prior := req.Header.Peek("X-Forwarded-For"); len(prior) > 0 {
		req.Header.Set("X-Forwarded-For", string(prior)+", "+clientIP)
	} else {
		req.Header.Set("X-Forwarded-For", clientIP)
	}
	req.SetHost(hc.Addr)

	resp := &ctx.Response
	if err := hc.Do(req, resp); err != nil {
		resp.Reset()
		ctx.Error("bad gateway: "+err.Error(), fasthttp.StatusBadGateway)
		return
	}
	// An upstream that closes its connection does not close the client's.
	stripHop(&resp.Header)
}
