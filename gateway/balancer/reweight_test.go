package balancer

import (
	"net/url"
	"testing"
	"time"
)

// TestReweightedKeepsState: a target rebuilt for a new weight keeps its
// health, ejection, EWMA and counters, but not the in-flight attempts,
// which end on the old target.
func TestReweightedKeepsState(t *testing.T) {
	u, _ := url.Parse("http://10.0.0.1:9001")
	old := NewTarget(u, 3)
	old.SetHealthy(false)
	until := time.Now().Add(time.Minute)
	old.Eject(until)
	old.Start()
	old.End(40*time.Millisecond, Failed)
	old.Start() // still in flight
	n := old.Reweighted(0)
	if n.Weight != 1 || n.URL != u {
		t.Fatalf("weight %d url %v, want 1 and the same URL", n.Weight, n.URL)
	}
	if n.Healthy() || !n.Ejected(time.Now()) || n.EWMA() != 40*time.Millisecond || n.Requests() != 1 || n.Failures() != 1 {
		t.Fatalf("state not copied: healthy=%v ejected=%v ewma=%v requests=%d failures=%d",
			n.Healthy(), n.Ejected(time.Now()), n.EWMA(), n.Requests(), n.Failures())
	}
	if n.Inflight() != 0 || old.Inflight() != 1 {
		t.Fatalf("inflight new=%d old=%d, want 0 and 1", n.Inflight(), old.Inflight())
	}
}
