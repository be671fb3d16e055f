package telemetry

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Hot-path metrics without per-request garbage.
//
// Building attribute slices and sets for every request (and the options
// wrapping them) was a large share of a server's allocations, and the GC
// work they cause costs throughput. The values are few: a route (or an
// upstream target) sees a handful of methods and status codes. So the
// record options are built once per (route or target, method, status, ...)
// and cached.

// maxCachedOptions bounds an OptionCache: the key space is small in
// practice (methods x statuses), but an upstream may answer with any code
// from 100 to 999. Past the bound, options are built per call, as without
// a cache.
const maxCachedOptions = 512

// OptionCache maps a small integer key (the caller packs method, status
// and the like into it) to the record options carrying its attribute set,
// as a slice: passing an existing slice to the variadic Record of the
// metric interface does not allocate, while a single option would be boxed
// into a new slice on every call. Reads are lock-free (an immutable map
// behind an atomic pointer); a miss copies the map under a lock, which
// happens once per key. The zero value is ready to use.
type OptionCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[uint32][]metric.RecordOption]
}

// Get returns the options for key, calling build to make its attribute
// set on the first use of key. The slice must not be modified.
func (c *OptionCache) Get(key uint32, build func() attribute.Set) []metric.RecordOption {
	if m := c.m.Load(); m != nil {
		if o, ok := (*m)[key]; ok {
			return o
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	var n int
	if old != nil {
		if o, ok := (*old)[key]; ok {
			return o
		}
		n = len(*old)
	}
	o := []metric.RecordOption{metric.WithAttributeSet(build())}
	if n >= maxCachedOptions {
		return o
	}
	m := make(map[uint32][]metric.RecordOption, n+1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[key] = o
	c.m.Store(&m)
	return o
}

// knownMethods are the http.request.method values recorded as is; anything
// else is _OTHER, as the semantic conventions ask (bounded cardinality).
// Never written.
var knownMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"}

// NumMethods is the number of distinct http.request.method values
// [MethodIndex] returns, _OTHER included; an index fits in 4 bits.
const NumMethods = len(knownMethods)

// MethodIndex is the index in [0, NumMethods) of m's http.request.method
// value: the standard methods, else _OTHER.
func MethodIndex(m string) int {
	for i, k := range knownMethods[:NumMethods-1] {
		if m == k {
			return i
		}
	}
	return NumMethods - 1
}

// MethodName is the http.request.method value of a [MethodIndex].
func MethodName(i int) string { return knownMethods[i] }
