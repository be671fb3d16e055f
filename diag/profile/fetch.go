// Package profile fetches pprof profiles from a live process's admin
// listener and turns them into what an SRE reads at 3 a.m.: the top
// functions, the difference between two profiles, and live goroutines
// grouped by identical stack with their pprof labels (trace_id, ...).
//
// Parsing, merging, scaling and label filtering are done by
// github.com/google/pprof/profile, the same code behind `go tool pprof`;
// this package only adds the HTTP fetch and the summaries. The summaries
// (Top, Diff, Groups) are hand-written because the pprof driver's report
// package is internal and prints text only, while we also emit JSON and
// bundle files.
package profile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/pprof/profile"
)

// Type is a profile kind served under /debug/pprof/ by net/http/pprof.
type Type string

// The profile types Fetch understands.
const (
	CPU       Type = "cpu"
	Heap      Type = "heap"
	Allocs    Type = "allocs"
	Goroutine Type = "goroutine"
	Mutex     Type = "mutex"
	Block     Type = "block"
)

// Types lists every supported Type in the order the CLI documents them.
func Types() []Type { return []Type{CPU, Heap, Allocs, Goroutine, Mutex, Block} }

// ParseType validates s as a profile type.
func ParseType(s string) (Type, error) {
	for _, t := range Types() {
		if string(t) == s {
			return t, nil
		}
	}
	names := make([]string, 0, len(Types()))
	for _, t := range Types() {
		names = append(names, string(t))
	}
	return "", fmt.Errorf("unknown profile type %q (want one of %s)", s, strings.Join(names, ", "))
}

// DefaultSampleType is the sample type Top and Diff read for t when the
// caller does not choose one: what `go tool pprof` users usually look at.
func (t Type) DefaultSampleType() string {
	switch t {
	case CPU:
		return "cpu"
	case Heap:
		return "inuse_space"
	case Allocs:
		return "alloc_space"
	case Goroutine:
		return "goroutine"
	case Mutex, Block:
		return "delay"
	}
	return ""
}

// Errors a caller can test with errors.Is to tell the user what to fix.
var (
	// ErrUnreachable: nothing answered at the target address.
	ErrUnreachable = errors.New("target unreachable")
	// ErrUnauthorized: the admin listener wants a token (ADMIN_TOKEN).
	ErrUnauthorized = errors.New("admin listener requires a token (pass --token, set ADMIN_TOKEN, or under wardgate up --data DATA or --pid-file DATA/run/<service>/pid)")
	// ErrNotFound: the URL answered but does not serve pprof there.
	ErrNotFound = errors.New("no pprof endpoint at this address (is it the admin listener, not the public one?)")
)

// FetchOptions tunes Fetch. Client is required so that callers own
// timeouts, transports and connection reuse.
type FetchOptions struct {
	Client *http.Client
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token string
	// Seconds is the CPU profile duration (default 30, like go tool pprof).
	Seconds int
}

// NormalizeTarget accepts "host:port", "http://host:port" or
// "http://host:port/some/prefix" and returns a base URL without a
// trailing slash. Paths like /debug/pprof/ are appended to it.
func NormalizeTarget(target string) (*url.URL, error) {
	if target == "" {
		return nil, errors.New("no target: pass the admin URL, e.g. --target http://127.0.0.1:6060")
	}
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("bad target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("bad target %q: scheme must be http or https", target)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("bad target %q: no host", target)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.Path = strings.TrimSuffix(u.Path, "/debug/pprof")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// URL returns the pprof URL of typ under target.
func URL(target string, typ Type, seconds int) (string, error) {
	base, err := NormalizeTarget(target)
	if err != nil {
		return "", err
	}
	u := *base
	q := url.Values{}
	switch typ {
	case CPU:
		if seconds <= 0 {
			seconds = 30
		}
		u.Path += "/debug/pprof/profile"
		q.Set("seconds", strconv.Itoa(seconds))
	case Goroutine:
		// debug=0 is the proto form: unlike debug=1/2 it keeps pprof labels
		// per sample, which is how a goroutine is tied to its trace.
		u.Path += "/debug/pprof/goroutine"
		q.Set("debug", "0")
	case Heap:
		// gc=1: the runtime collects garbage first, so in-use bytes are
		// what the program retains, not what it has dropped since the
		// last cycle.
		u.Path += "/debug/pprof/heap"
		q.Set("gc", "1")
	case Allocs, Mutex, Block:
		u.Path += "/debug/pprof/" + string(typ)
	default:
		return "", fmt.Errorf("unknown profile type %q", typ)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Fetch downloads one profile of type typ from target's admin listener.
// It returns the parsed profile and the raw bytes (gzipped proto, what
// `go tool pprof` reads), so the caller can save the file untouched.
func Fetch(ctx context.Context, target string, typ Type, opts FetchOptions) (*profile.Profile, []byte, error) {
	if opts.Client == nil {
		return nil, nil, errors.New("profile.Fetch: FetchOptions.Client is nil")
	}
	u, err := URL(target, typ, opts.Seconds)
	if err != nil {
		return nil, nil, err
	}
	raw, err := Get(ctx, opts.Client, u, opts.Token)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s profile: %w", typ, err)
	}
	p, err := ParseData(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s profile from %s: response is not a pprof profile: %w", typ, u, err)
	}
	return p, raw, nil
}

// Get performs an authenticated GET against an admin URL and maps the
// failures an operator hits (nothing listening, token missing, wrong
// listener) to ErrUnreachable, ErrUnauthorized and ErrNotFound.
func Get(ctx context.Context, client *http.Client, rawURL, token string) ([]byte, error) {
	body, err := Open(ctx, client, rawURL, token)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := readBounded(body, MaxBody)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", rawURL, err)
	}
	return b, nil
}

// Open is Get for large answers: the caller streams the body (and closes
// it), e.g. into a parser while saving it.
func Open(ctx context.Context, client *http.Client, rawURL, token string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		// client.Do wraps in *url.Error, which repeats the URL; keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var opErr *net.OpError
		if ctx.Err() == nil && (errors.As(err, &opErr) || errors.Is(err, io.EOF)) {
			return nil, fmt.Errorf("%w: GET %s: %w", ErrUnreachable, rawURL, err)
		}
		return nil, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		if token != "" {
			return nil, fmt.Errorf("%w: GET %s: %s (the token was rejected)", ErrUnauthorized, rawURL, resp.Status)
		}
		return nil, fmt.Errorf("%w: GET %s: %s", ErrUnauthorized, rawURL, resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: GET %s: %s", ErrNotFound, rawURL, resp.Status)
	}
	return nil, fmt.Errorf("GET %s: %s: %s", rawURL, resp.Status, firstLine(body))
}

func firstLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// Label is one key=value pprof label selector.
type Label struct{ Key, Value string }

// ParseLabel parses "key=value".
func ParseLabel(s string) (Label, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return Label{}, fmt.Errorf("bad label %q: want key=value, e.g. trace_id=4bf92f3577b34da6a3ce929d0e0e4736", s)
	}
	return Label{Key: k, Value: v}, nil
}

// FilterLabels keeps only the samples carrying every one of labels (AND).
// It reports whether any sample matched. With no labels p is unchanged.
func FilterLabels(p *profile.Profile, labels []Label) bool {
	if len(labels) == 0 {
		return len(p.Sample) > 0
	}
	fm, _ := p.FilterSamplesByTag(func(s *profile.Sample) bool {
		for _, l := range labels {
			if !s.HasLabel(l.Key, l.Value) {
				return false
			}
		}
		return true
	}, nil)
	return fm
}
