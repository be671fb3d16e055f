// Package ratelog turns log lines written once per event into one line per
// condition and interval. A condition that happens on every request of an
// overload (a refused request, a failed upstream attempt) is already counted
// by a metric; logging each occurrence only floods stderr (80 MB in 20 s at
// saturation) and buries everything else. Its Handler logs the first
// occurrence of a condition at once, as it was, then counts: at the end of
// each interval in which more occurred, it writes one summary line, the
// last occurrence's record plus "count" (occurrences since the previous
// line of that condition, not logged one by one) and "interval". An
// interval with no occurrence ends the condition's window: the next one is
// logged at once again.
//
// A condition is the record's level and message plus the values of the
// attributes named in Options.KeyAttrs ("reason", "target", ...), so
// distinct causes are summarized apart. Wrapped in slog.NewLogLogger it
// also tames a *log.Logger such as http.Server.ErrorLog, where net/http
// and httputil.ReverseProxy write a line per connection or request for
// some errors (TLS handshakes, broken response copies).
package ratelog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Options tune a Handler.
type Options struct {
	// Interval is the longest a count waits before it is written.
	// Default 10s.
	Interval time.Duration
	// KeyAttrs are the top-level attributes whose values, with the level
	// and the message, identify a condition. Keep them to attributes with
	// few values (a reason, a target), not a client address.
	KeyAttrs []string
	// MaxKeys bounds the conditions tracked at once (default 1024); past
	// it, records are summarized by level and message only, and past twice
	// it by level alone.
	MaxKeys int
}

// Handler is the rate-limiting slog.Handler wrapper. Handlers derived with
// WithAttrs/WithGroup share its windows; a summary is written through the
// handler that received the condition's last occurrence.
type Handler struct {
	next slog.Handler
	st   *state
}

type state struct {
	interval time.Duration
	keyAttrs []string
	maxKeys  int
	now      func() time.Time

	mu      sync.Mutex
	windows map[string]*window
	writing sync.WaitGroup // summaries taken by a tick and not written yet
}

// window is one condition's interval: the occurrences not logged yet.
type window struct {
	count int
	last  slog.Record
	h     slog.Handler
	ctx   context.Context // only the span context of the last occurrence
	timer *time.Timer
}

// NewHandler wraps next. Call Flush before exiting so the last counts are
// written.
func NewHandler(next slog.Handler, o Options) *Handler {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1024
	}
	return &Handler{next: next, st: &state{
		interval: o.Interval,
		keyAttrs: o.KeyAttrs,
		maxKeys:  o.MaxKeys,
		now:      time.Now,
		windows:  map[string]*window{},
	}}
}

// Enabled reports what the wrapped handler does.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs returns a handler sharing h's windows.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), st: h.st}
}

// WithGroup returns a handler sharing h's windows.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), st: h.st}
}

// Handle writes r if it is the first occurrence of its condition in a
// window, and counts it otherwise.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	st := h.st
	key := st.key(r, true)
	st.mu.Lock()
	w := st.windows[key]
	if w == nil && len(st.windows) >= st.maxKeys {
		// Too many conditions: summarize by message, and past twice the
		// bound by level alone (messages that embed a value, like
		// net/http's "TLS handshake error from ADDR", never repeat).
		key = st.key(r, false)
		if w = st.windows[key]; w == nil && len(st.windows) >= 2*st.maxKeys {
			key = r.Level.String()
			w = st.windows[key]
		}
	}
	if w == nil {
		w = &window{}
		st.windows[key] = w
		w.timer = time.AfterFunc(st.interval, func() { st.tick(key, w) })
		st.mu.Unlock()
		return h.next.Handle(ctx, r)
	}
	w.count++
	w.last = r.Clone()
	w.h = h.next
	w.ctx = trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(ctx))
	st.mu.Unlock()
	return nil
}

// key is the record's condition; withAttrs adds the KeyAttrs values.
func (st *state) key(r slog.Record, withAttrs bool) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(0)
	b.WriteString(r.Message)
	if !withAttrs || len(st.keyAttrs) == 0 {
		return b.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		for _, k := range st.keyAttrs {
			if a.Key == k {
				b.WriteByte(0)
				b.WriteString(k)
				b.WriteByte('=')
				b.WriteString(a.Value.String())
			}
		}
		return true
	})
	return b.String()
}

// tick ends w's interval: it writes the summary of what it counted and
// starts the next interval, or closes the window if nothing happened.
func (st *state) tick(key string, w *window) {
	st.mu.Lock()
	if st.windows[key] != w { // flushed meanwhile
		st.mu.Unlock()
		return
	}
	if w.count == 0 {
		delete(st.windows, key)
		st.mu.Unlock()
		return
	}
	s := w.take()
	w.timer.Reset(st.interval)
	st.writing.Add(1)
	st.mu.Unlock()
	defer st.writing.Done()
	st.write(s)
}

// summary is a counted window ready to be written.
type summary struct {
	h     slog.Handler
	ctx   context.Context
	rec   slog.Record
	count int
}

// take empties w's count (under st.mu).
func (w *window) take() summary {
	s := summary{h: w.h, ctx: w.ctx, rec: w.last, count: w.count}
	w.count, w.last, w.h, w.ctx = 0, slog.Record{}, nil, nil
	return s
}

func (st *state) write(s summary) {
	r := slog.NewRecord(st.now(), s.rec.Level, s.rec.Message, 0)
	s.rec.Attrs(func(a slog.Attr) bool { r.AddAttrs(a); return true })
	r.AddAttrs(slog.Int("count", s.count), slog.Duration("interval", st.interval))
	_ = s.h.Handle(s.ctx, r)
}

// Flush writes the counts not written yet (and waits for summaries being
// written) and forgets every window, so the next occurrence of any
// condition is logged at once. Call it before exiting.
func (h *Handler) Flush() {
	st := h.st
	st.mu.Lock()
	var out []summary
	for key, w := range st.windows {
		w.timer.Stop()
		if w.count > 0 {
			out = append(out, w.take())
		}
		delete(st.windows, key)
	}
	st.mu.Unlock()
	for _, s := range out {
		st.write(s)
	}
	st.writing.Wait() // a tick's summary is written before Flush returns
}
