package telemetry

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func TestOptionCacheBounded(t *testing.T) {
	var c OptionCache
	builds := 0
	for round := 0; round < 2; round++ {
		for k := uint32(0); k < maxCachedOptions+10; k++ {
			o := c.Get(k, func() attribute.Set {
				builds++
				return attribute.NewSet(attribute.Int("k", int(k)))
			})
			if len(o) != 1 {
				t.Fatalf("key %d: nil option", k)
			}
		}
	}
	if n := len(*c.m.Load()); n != maxCachedOptions {
		t.Errorf("cache holds %d options, want the bound %d", n, maxCachedOptions)
	}
	// Cached keys build once; keys past the bound build on every call.
	if want := maxCachedOptions + 2*10; builds != want {
		t.Errorf("%d builds, want %d", builds, want)
	}
}

func TestMethodIndex(t *testing.T) {
	for m, want := range map[string]string{"GET": "GET", "PATCH": "PATCH", "BREW": "_OTHER", "get": "_OTHER", "": "_OTHER"} {
		if got := MethodName(MethodIndex(m)); got != want {
			t.Errorf("method %q recorded as %q, want %q", m, got, want)
		}
	}
}
