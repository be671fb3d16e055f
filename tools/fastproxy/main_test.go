package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// startProxy runs fastproxy on a free loopback port in front of targets and
// returns its address; the proxy stops when the test ends.
func startProxy(t *testing.T, targets ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-targets", strings.Join(targets, ",")}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fastproxy: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading listen line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("unexpected first line %q", line)
	}
	return addr
}

func TestProxyRoundRobinAndHeaders(t *testing.T) {
	type seen struct {
		backend string
		header  http.Header
		host    string
	}
	var mu sync.Mutex
	var got []seen
	backend := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, seen{name, r.Header.Clone(), r.Host})
			mu.Unlock()
			w.Header().Set("Connection", "X-Upstream-Hop")
			w.Header().Set("X-Upstream-Hop", "secret")
			w.Header().Set("Keep-Alive", "timeout=5")
			fmt.Fprint(w, name)
		}))
	}
	a, b := backend("a"), backend("b")
	defer a.Close()
	defer b.Close()
	addr := startProxy(t, a.URL, b.URL)

	var bodies []string
	for i := 0; i < 4; i++ {
		req, err := http.NewRequest("GET", "http://"+addr+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("Connection", "X-Client-Hop")
		req.Header.Set("X-Client-Hop", "secret")
		req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
		req.Header.Set("X-Kept", "yes")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
		for _, h := range []string{"X-Upstream-Hop", "Keep-Alive"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("response has hop-by-hop header %s: %q", h, v)
			}
		}
		bodies = append(bodies, string(body))
	}
	if strings.Join(bodies, "") != "abab" {
		t.Errorf("bodies %q, want round robin a b a b", bodies)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range got {
		if v := s.header.Get("X-Forwarded-For"); v != "203.0.113.9, 127.0.0.1" {
			t.Errorf("backend %s: X-Forwarded-For %q", s.backend, v)
		}
		if v := s.header.Get("X-Forwarded-Host"); v != addr {
			t.Errorf("backend %s: X-Forwarded-Host %q, want %q", s.backend, v, addr)
		}
		for _, h := range []string{"X-Client-Hop", "Proxy-Authorization", "Connection"} {
			if v := s.header.Get(h); v != "" {
				t.Errorf("backend %s got hop-by-hop header %s: %q", s.backend, h, v)
			}
		}
		if s.header.Get("X-Kept") != "yes" {
			t.Errorf("backend %s: end-to-end header X-Kept lost", s.backend)
		}
		if !strings.HasPrefix(s.host, "127.0.0.1:") || s.host == addr {
			t.Errorf("backend %s: Host %q, want the target's address", s.backend, s.host)
		}
	}
}

func TestProxyBadGateway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more
	addr := startProxy(t, dead)
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-targets", "127.0.0.1:1"},
		{"-targets", "https://127.0.0.1:1"},
		{"-targets", "http://127.0.0.1:1/prefix"},
		{"-targets", "http://127.0.0.1:1", "-max-conns", "0"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
