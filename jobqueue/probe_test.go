package jobqueue_test

import (
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/wardgate/wardgate/jobqueue"
)

// TestCoreFieldsReadTheQueue checks the field list `wardgate diag analyze`
// reads from a core against a running Queue: every path must name an
// integer field (or a sync/atomic integer) of Queue, and each must hold what
// its role says while payloads wait on a blocked store. Renaming or
// repurposing one of those fields fails here rather than leaving the
// post-mortem's job queue section empty.
func TestCoreFieldsReadTheQueue(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueue = 50
	cfg.MaxWorkers = 3
	gate := newGateSink(fileSink(t))
	gate.Close() // every Put blocks: payloads stay admitted and a worker stays busy
	q, url := startQueue(t, cfg, gate)
	t.Cleanup(gate.Open) // runs before startQueue's Drain

	fields := map[string]reflect.Value{}
	qv := reflect.ValueOf(q).Elem()
	for _, f := range jobqueue.CoreFields() {
		if _, dup := fields[f.Role]; dup {
			t.Errorf("role %q declared twice", f.Role)
		}
		v, err := fieldByPath(qv, f.Path)
		if err != "" {
			t.Errorf("CoreFields %s: %s", f.Role, err)
			continue
		}
		fields[f.Role] = v
	}
	for _, role := range []string{"depth", "capacity", "busy", "workers"} {
		if _, ok := fields[role]; !ok {
			t.Errorf("no field declared for role %q (the report shows it as ?)", role)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	read := func(role string) int64 { return readInt(t, fields[role]) }

	if got := read("capacity"); got != int64(cfg.MaxQueue) {
		t.Errorf("capacity field = %d, want MAX_QUEUE %d", got, cfg.MaxQueue)
	}
	if got := read("workers"); got != int64(cfg.MaxWorkers) {
		t.Errorf("workers field = %d, want MAX_WORKERS %d", got, cfg.MaxWorkers)
	}
	if d, b := read("depth"), read("busy"); d != 0 || b != 0 {
		t.Errorf("idle queue: depth %d busy %d, want 0 0", d, b)
	}

	const payloads = 7
	if r, err := post(t, nil, url, collection(payloads, "probe")); err != nil || r.code != http.StatusAccepted {
		t.Fatalf("post: %d %v, %v", r.code, r.body, err)
	}
	// The batch is flushed after BatchMaxWait and its Put blocks at the gate.
	waitFor(t, "a worker blocked storing the batch", func() bool { return read("busy") == 1 })
	if got := read("depth"); got != payloads {
		t.Errorf("depth field = %d with %d payloads acked and not stored, want %d", got, payloads, payloads)
	}
}

// fieldByPath follows a dot-separated field path from v.
func fieldByPath(v reflect.Value, path string) (reflect.Value, string) {
	for _, name := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, path + ": " + v.Type().String() + " is not a struct"
		}
		f := v.FieldByName(name)
		if !f.IsValid() {
			return reflect.Value{}, path + ": " + v.Type().String() + " has no field " + name
		}
		v = f
	}
	return v, ""
}

// readInt reads an integer field the way the analyzer does: a plain integer,
// or the int64 inside a sync/atomic type (loaded atomically here, since the
// queue's goroutines write it meanwhile).
func readInt(t *testing.T, v reflect.Value) int64 {
	t.Helper()
	switch {
	case v.CanInt():
		return v.Int()
	case v.Type() == reflect.TypeFor[atomic.Int64]():
		return (*atomic.Int64)(unsafe.Pointer(v.UnsafeAddr())).Load()
	case v.Type() == reflect.TypeFor[atomic.Int32]():
		return int64((*atomic.Int32)(unsafe.Pointer(v.UnsafeAddr())).Load())
	}
	t.Fatalf("field of type %s is not an integer the analyzer can read", v.Type())
	return 0
}
