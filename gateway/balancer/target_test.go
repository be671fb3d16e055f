package balancer

import (
	"net/url"
	"testing"
	"time"
)

// EjectedUntil is the end of the last ejection (what the admin page
// shows), the zero time before any ejection and after one is cleared.
func TestEjectedUntil(t *testing.T) {
	tg := NewTarget(&url.URL{Scheme: "http", Host: "127.0.0.1:1"}, 1)
	if u := tg.EjectedUntil(); !u.IsZero() {
		t.Fatalf("new target: EjectedUntil = %v, want zero", u)
	}
	until := time.Now().Add(30 * time.Second)
	tg.Eject(until)
	if u := tg.EjectedUntil(); !u.Equal(until) || !tg.Ejected(until.Add(-time.Second)) || tg.Ejected(until) {
		t.Fatalf("EjectedUntil = %v, want %v (and ejected just before it only)", u, until)
	}
	tg.Eject(time.Time{})
	if u := tg.EjectedUntil(); !u.IsZero() || tg.Ejected(time.Now()) {
		t.Fatalf("cleared: EjectedUntil = %v, want zero", u)
	}
}
