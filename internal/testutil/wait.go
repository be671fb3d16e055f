package testutil

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Eventually calls cond every interval until it returns true, failing t
// with what and cond's last reason once timeout passes or ctx is done. Use
// it instead of sleeps: timeouts are generous because test machines are
// shared and loaded, and the wait ends as soon as the condition holds.
func Eventually(ctx context.Context, t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if why == "" {
				t.Fatalf("timed out waiting for %s (%s)", what, timeout)
			}
			t.Fatalf("%s: not within %s (last: %s)", what, timeout, why)
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
		}
	}
}

// Get fetches url with client and returns the status code and body; on a
// transport error the code is 0 and the body is the error text, so a
// caller polling an endpoint can report what it last saw.
func Get(ctx context.Context, client *http.Client, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WaitHTTPOK polls url every 100ms (each try bounded to 10s) until it
// answers 200, failing t after timeout with the last status and body.
func WaitHTTPOK(ctx context.Context, t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		code, body := Get(ctx, client, url)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s never answered 200 (last: %d %s)", url, code, body)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// WaitCount waits until c reaches n, typically goroutines a test started
// counting themselves in before it takes a profile, failing t after
// timeout with how many did.
func WaitCount(t testing.TB, c *atomic.Int64, n int64, timeout time.Duration) {
	t.Helper()
	Eventually(context.Background(), t, timeout, 10*time.Millisecond, "goroutines to start", func() (bool, string) {
		return c.Load() >= n, fmt.Sprintf("%d goroutines started, want %d", c.Load(), n)
	})
}
