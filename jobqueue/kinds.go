package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// kindHandler is a registered typed handler, checked once by reflection.
type kindHandler struct {
	fn reflect.Value
	in reflect.Type
}

var (
	contextType = reflect.TypeFor[context.Context]()
	errorType   = reflect.TypeFor[error]()
)

// Register installs a typed handler for payloads whose "kind" field equals
// kind. fn must be a func(context.Context, In) (Out, error) for any In that
// encoding/json can decode into and any Out it can encode. The signature is
// checked here, once; a bad one is an error that says what is wrong.
//
// Workers decode each payload of that kind into a new In and call fn before
// storing the batch. A non-nil Out is stored in the payload's line as
// "result", a non-nil error as "error" (so are a payload that does not
// decode into In and a panicking handler). The payload is stored either way:
// a handler never drops data.
//
// The context fn receives is the batch's: it carries the CONSUMER span
// (linked to the request's PRODUCER span) and is never cancelled by the
// HTTP request, which may be long gone by then.
func (q *Queue) Register(kind string, fn any) error {
	if kind == "" {
		return errors.New("jobqueue: Register: empty kind")
	}
	h, err := checkHandler(fn)
	if err != nil {
		return fmt.Errorf("jobqueue: Register(%q): %w", kind, err)
	}
	q.kindsMu.Lock()
	defer q.kindsMu.Unlock()
	old := *q.kinds.Load()
	if _, dup := old[kind]; dup {
		return fmt.Errorf("jobqueue: Register(%q): a handler is already registered for this kind", kind)
	}
	next := make(map[string]*kindHandler, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[kind] = h
	q.kinds.Store(&next)
	return nil
}

func checkHandler(fn any) (*kindHandler, error) {
	if fn == nil {
		return nil, errors.New("handler is nil, want func(context.Context, In) (Out, error)")
	}
	v := reflect.ValueOf(fn)
	t := v.Type()
	if t.Kind() != reflect.Func {
		return nil, fmt.Errorf("handler is a %s, not a func(context.Context, In) (Out, error)", t)
	}
	if v.IsNil() {
		return nil, errors.New("handler is a nil func")
	}
	if t.IsVariadic() {
		return nil, fmt.Errorf("handler %s is variadic, want func(context.Context, In) (Out, error)", t)
	}
	if t.NumIn() != 2 {
		return nil, fmt.Errorf("handler %s takes %d arguments, want 2 (context.Context, In)", t, t.NumIn())
	}
	if t.In(0) != contextType {
		return nil, fmt.Errorf("handler %s: first argument is %s, want context.Context", t, t.In(0))
	}
	if t.NumOut() != 2 {
		return nil, fmt.Errorf("handler %s returns %d results, want 2 (Out, error)", t, t.NumOut())
	}
	if t.Out(1) != errorType {
		return nil, fmt.Errorf("handler %s: last result is %s, want error", t, t.Out(1))
	}
	for _, typ := range []reflect.Type{t.In(1), t.Out(0)} {
		if !jsonable(typ) {
			return nil, fmt.Errorf("handler %s: %s cannot go through encoding/json", t, typ)
		}
	}
	return &kindHandler{fn: v, in: t.In(1)}, nil
}

// jsonable rejects the kinds encoding/json can never handle (interfaces are
// allowed: they may hold anything at run time).
func jsonable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return false
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return jsonable(t.Elem())
	}
	return true
}

// runKind runs the handler registered for p's "kind", if any. ok is false
// when no handler applies. result is JSON (nil for a nil Out); errMsg is
// empty on success.
func (q *Queue) runKind(ctx context.Context, p json.RawMessage) (result json.RawMessage, errMsg string, ok bool) {
	kinds := *q.kinds.Load()
	if len(kinds) == 0 {
		return nil, "", false
	}
	var head struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(p, &head) != nil || head.Kind == "" {
		return nil, "", false
	}
	h := kinds[head.Kind]
	if h == nil {
		return nil, "", false
	}
	in := reflect.New(h.in)
	if err := json.Unmarshal(p, in.Interface()); err != nil {
		return nil, fmt.Sprintf("kind %q: decode payload into %s: %v", head.Kind, h.in, err), true
	}
	out, err := callHandler(ctx, h, in.Elem())
	if err != nil {
		return nil, fmt.Sprintf("kind %q: %v", head.Kind, err), true
	}
	if out != nil {
		b, merr := json.Marshal(out)
		if merr != nil {
			return nil, fmt.Sprintf("kind %q: encode result: %v", head.Kind, merr), true
		}
		return b, "", true
	}
	return nil, "", true
}

func callHandler(ctx context.Context, h *kindHandler, in reflect.Value) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	res := h.fn.Call([]reflect.Value{reflect.ValueOf(&ctx).Elem(), in})
	if e := res[1].Interface(); e != nil {
		return nil, e.(error)
	}
	o := res[0]
	switch o.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		if o.IsNil() {
			return nil, nil
		}
	}
	return o.Interface(), nil
}
