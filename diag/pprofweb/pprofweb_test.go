package pprofweb

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:noinline
func pprofwebBlockedHere(ch <-chan struct{}, wg *sync.WaitGroup) {
	wg.Done()
	<-ch
}

// goroutineProfile writes this process's goroutine profile (proto) with
// 20 goroutines blocked in pprofwebBlockedHere.
func goroutineProfile(t *testing.T) string {
	t.Helper()
	ch := make(chan struct{})
	t.Cleanup(func() { close(ch) })
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go pprofwebBlockedHere(ch, &wg)
	}
	wg.Wait()
	path := filepath.Join(t.TempDir(), "goroutine.pb.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.Lookup("goroutine").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestServeFlameGraphUntilCancel: the UI listens on a free loopback port,
// reports its URL, its flame graph and top pages name a function of the
// profile, and Serve returns nil once its context is cancelled (and the
// port is closed).
func TestServeFlameGraphUntilCancel(t *testing.T) {
	path := goroutineProfile(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Options{Addr: "127.0.0.1:0", Profiles: []string{path}, Ready: func(u string) { urls <- u }})
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-done:
		t.Fatalf("Serve returned before serving: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no URL within 2 minutes")
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/ui/") {
		t.Fatalf("URL %q, want http://127.0.0.1:PORT/ui/", base)
	}
	for _, page := range []string{"flamegraph", "top"} {
		code, body := get(t, base+page)
		if code != http.StatusOK || !strings.Contains(body, "pprofweb.pprofwebBlockedHere") {
			t.Errorf("GET %s%s: %d, function pprofwebBlockedHere in page: %v (%d bytes)", base, page, code, strings.Contains(body, "pprofwebBlockedHere"), len(body))
		}
	}
	if code, _ := get(t, strings.TrimSuffix(base, "ui/")); code != http.StatusOK {
		t.Errorf("GET / (redirected to /ui/): %d", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return within a minute of cancel")
	}
	if _, err := http.Get(base + "flamegraph"); err == nil {
		t.Error("the UI still answers after Serve returned")
	}
}

// TestServeErrors: a profile pprof cannot read and a taken address are
// errors, not a server.
func TestServeErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "not-a-profile.pb.gz")
	if err := os.WriteFile(bad, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Serve(ctx, Options{Addr: "127.0.0.1:0", Profiles: []string{bad}, Ready: func(string) { t.Error("served an unreadable profile") }}); err == nil {
		t.Error("Serve of a non-profile returned nil")
	}
	if err := Serve(ctx, Options{Addr: "127.0.0.1:0"}); err == nil {
		t.Error("Serve of no profile returned nil")
	}
	if err := Serve(ctx, Options{Addr: "127.0.0.1:bad", Profiles: []string{bad}}); err == nil {
		t.Error("Serve on a bad address returned nil")
	}
}
