package balancer

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// mkTargets returns healthy targets http://127.0.0.1:9001... with the given
// weights.
func mkTargets(t testing.TB, weights ...int) []*Target {
	t.Helper()
	out := make([]*Target, len(weights))
	for i, w := range weights {
		u, err := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", 9001+i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = NewTarget(u, w)
	}
	return out
}

func mustNew(t testing.TB, name string, targets []*Target, opts Options) Balancer {
	t.Helper()
	b, err := New(name, targets, opts)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return b
}

// request returns a GET / from remote (host:port).
func request(remote string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	return r
}

// clientReq returns a request from a distinct client IP per i.
func clientReq(i int) *http.Request {
	return request(fmt.Sprintf("10.%d.%d.%d:40000", i>>16&255, i>>8&255, i&255))
}

func mustPick(t testing.TB, b Balancer, r *http.Request, tried []*Target) *Target {
	t.Helper()
	got, err := b.Pick(r, tried)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	if got == nil {
		t.Fatal("Pick returned nil target and nil error")
	}
	return got
}

func wantNoTarget(t testing.TB, b Balancer, r *http.Request, tried []*Target) {
	t.Helper()
	got, err := b.Pick(r, tried)
	if !errors.Is(err, ErrNoTarget) {
		t.Fatalf("Pick = %v, %v; want ErrNoTarget", got, err)
	}
	if got != nil {
		t.Fatalf("Pick returned target %v with ErrNoTarget", got)
	}
}

// index returns the position of x in ts, or -1.
func index(ts []*Target, x *Target) int {
	for i, t := range ts {
		if t == x {
			return i
		}
	}
	return -1
}

// letters renders picks as a..z by target index, for readable sequences.
func letters(ts []*Target, picks []*Target) string {
	b := make([]byte, 0, 2*len(picks))
	for i, p := range picks {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, byte('a'+index(ts, p)))
	}
	return string(b)
}

var (
	farFuture = time.Now().Add(24 * time.Hour)
	zeroTime  time.Time
)
