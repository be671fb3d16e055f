package gateway

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Hot-path telemetry without per-request garbage.
//
// Building attribute slices and sets for every request (and the options
// wrapping them) was a large share of the gateway's allocations, and the
// GC work they cause costs throughput. The values are few: a route (or
// target) sees a handful of methods and status codes. So the metric options
// are built once per (route or target, method, status or error type) and
// cached, and span attributes are only built when the span records (with
// traces off, spans are non-recording and attributes would be thrown away).

// knownMethods are the http.request.method values recorded as is; anything
// else is _OTHER, as the semantic conventions ask (bounded cardinality).
var knownMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"}

const otherMethod = len(knownMethods) - 1

// methodIndex is the index of m's http.request.method in knownMethods.
func methodIndex(m string) int {
	for i, k := range knownMethods[:otherMethod] {
		if m == k {
			return i
		}
	}
	return otherMethod
}

// methodAttr bounds the cardinality of http.request.method: methods
// outside the standard set are recorded as _OTHER.
func methodAttr(m string) string { return knownMethods[methodIndex(m)] }

// errorTypes are the error.type values of failed attempts (see errorType);
// index 0 means "no error".
var errorTypes = [...]string{"", "client_closed", "body_too_large", "timeout", "connection_refused", "connection_error",
	"request_body_timeout", "bad_request_body"}

func errorTypeIndex(et string) int {
	for i, e := range errorTypes[1:] {
		if e == et {
			return i + 1
		}
	}
	return len(errorTypes) - 1 // connection_error
}

// measureKey packs a method index, a status code (0 if none) and an error
// type index into an optCache key.
func measureKey(method, status, errType int) uint32 {
	return uint32(method) | uint32(status&0xffff)<<4 | uint32(errType)<<20
}

// maxCachedOptions bounds an optCache: the key space is small in practice
// (methods x statuses), but an upstream may answer with any code from 100
// to 999. Past the bound, options are built per call, as without a cache.
const maxCachedOptions = 512

// optCache maps a measureKey to the record options carrying its attribute
// set, as a slice: passing an existing slice to the variadic Record of the
// metric interface does not allocate, while a single option would be boxed
// into a new slice on every call. Reads are lock-free (an immutable map behind an atomic pointer); a
// miss copies the map under a lock, which happens once per key.
type optCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[uint32][]metric.RecordOption]
}

// get returns the options for key, calling build to make its attribute
// set on the first use of key. The slice must not be modified.
func (c *optCache) get(key uint32, build func() attribute.Set) []metric.RecordOption {
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
