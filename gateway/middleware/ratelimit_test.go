package middleware

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

func hit(h http.Handler, remote string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRateLimit429AfterBurst(t *testing.T) {
	// 0.1 rps: a refused client must wait ~10s for its next token.
	l := NewRateLimiter(RateLimitConfig{RPS: 0.1, Burst: 3, MaxClients: 10})
	clock := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return clock }
	h := l.Middleware(okHandler)

	for i := range 3 {
		if rec := hit(h, "10.0.0.1:1234"); rec.Code != http.StatusNoContent {
			t.Fatalf("request %d within burst: status %d", i, rec.Code)
		}
	}
	rec := hit(h, "10.0.0.1:5555") // same client, other port
	checkJSONError(t, rec, http.StatusTooManyRequests)
	if ra := rec.Header().Get("Retry-After"); ra != "10" {
		t.Fatalf("Retry-After = %q, want 10", ra)
	}
	// Another client has its own bucket.
	if rec := hit(h, "10.0.0.2:1234"); rec.Code != http.StatusNoContent {
		t.Fatalf("other client: status %d", rec.Code)
	}
	// Refused requests do not consume tokens: 2.5s later the wait is 7.5s -> 8.
	clock = clock.Add(2500 * time.Millisecond)
	for range 5 {
		hit(h, "10.0.0.1:1")
	}
	if ra := hit(h, "10.0.0.1:1").Header().Get("Retry-After"); ra != "8" {
		t.Fatalf("Retry-After after 2.5s = %q, want 8", ra)
	}
	// Once the token is back the client passes again, exactly once.
	clock = clock.Add(7500 * time.Millisecond)
	if rec := hit(h, "10.0.0.1:1"); rec.Code != http.StatusNoContent {
		t.Fatalf("after refill: status %d", rec.Code)
	}
	if rec := hit(h, "10.0.0.1:1"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("second after refill: status %d", rec.Code)
	}
}

func TestRateLimitRetryAfterAtLeastOne(t *testing.T) {
	l := NewRateLimiter(RateLimitConfig{RPS: 1000, Burst: 1, MaxClients: 10})
	clock := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return clock }
	h := l.Middleware(okHandler)
	hit(h, "10.0.0.1:1")
	rec := hit(h, "10.0.0.1:1")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("status %d Retry-After %q, want 429 and 1 (a 1ms wait rounds up)", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestRateLimitMemoryBound(t *testing.T) {
	const maxClients = 100
	l := NewRateLimiter(RateLimitConfig{RPS: 1, Burst: 1, MaxClients: maxClients})
	h := l.Middleware(okHandler)
	for i := range 10 * maxClients {
		remote := fmt.Sprintf("10.%d.%d.%d:40000", i>>16&255, i>>8&255, i&255)
		if rec := hit(h, remote); rec.Code != http.StatusNoContent {
			t.Fatalf("new client %s: status %d", remote, rec.Code)
		}
		if n := l.Len(); n > maxClients {
			t.Fatalf("after %d clients the table holds %d > max_clients %d", i+1, n, maxClients)
		}
	}
	if n := l.Len(); n != maxClients {
		t.Fatalf("table holds %d, want it full at %d", n, maxClients)
	}
	// The most recent client is still tracked (and limited); the oldest was evicted.
	last := fmt.Sprintf("10.0.%d.%d:1", (10*maxClients-1)>>8&255, (10*maxClients-1)&255)
	if rec := hit(h, last); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("most recent client forgotten: status %d", rec.Code)
	}
	if rec := hit(h, "10.0.0.0:1"); rec.Code != http.StatusNoContent {
		t.Fatalf("evicted client should start with a full bucket: status %d", rec.Code)
	}
}

func TestRateLimitKeys(t *testing.T) {
	cases := []struct{ a, b string }{
		{"[2001:db8:1:2:aaaa::1]:443", "[2001:db8:1:2:bbbb::9]:80"}, // same /64
		{"192.0.2.7:1", "[::ffff:192.0.2.7]:2"},                     // IPv4-mapped
		{"[fe80::1%eth0]:1", "[fe80::2%eth1]:1"},                    // zones dropped, same /64
		{"192.0.2.8", "192.0.2.8:9"},                                // no port
	}
	for _, c := range cases {
		if ka, kb := clientKey(c.a), clientKey(c.b); ka != kb || !ka.IsValid() {
			t.Errorf("clientKey(%q) = %v, clientKey(%q) = %v; want the same valid key", c.a, ka, c.b, kb)
		}
	}
	if clientKey("[2001:db8:1:2::1]:1") == clientKey("[2001:db8:1:3::1]:1") {
		t.Error("different /64s share a bucket")
	}
	// Through the handler: the second address of the /64 is limited too.
	h := NewRateLimiter(RateLimitConfig{RPS: 0.001, Burst: 1, MaxClients: 10}).Middleware(okHandler)
	hit(h, cases[0].a)
	if rec := hit(h, cases[0].b); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("same /64: status %d, want 429", rec.Code)
	}
	if ra, _ := strconv.Atoi(hit(h, cases[0].b).Header().Get("Retry-After")); ra < 900 || ra > 1000 {
		t.Fatalf("Retry-After = %d, want about 1000", ra)
	}
}

// Build creates independent state per call: one route's clients do not
// drain another route's buckets.
func TestRateLimitBuildFreshState(t *testing.T) {
	cfg := Config{RateLimit: RateLimitConfig{RPS: 0.001, Burst: 1, MaxClients: 10}}
	m1, err := Build("ratelimit", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := Build("ratelimit", cfg, nil)
	h1, h2 := m1(okHandler), m2(okHandler)
	hit(h1, "10.0.0.1:1")
	if rec := hit(h2, "10.0.0.1:1"); rec.Code != http.StatusNoContent {
		t.Fatalf("second route shares the first's bucket: status %d", rec.Code)
	}
	if _, err := Build("ratelimit", Config{}, nil); err == nil {
		t.Fatal("Build(ratelimit) with a zero config succeeded")
	}
}
