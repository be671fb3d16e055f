package profile_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gpprof "github.com/google/pprof/profile"

	"github.com/wardgate/wardgate/diag/profile"
	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/telemetry"
)

const pkg = "github.com/wardgate/wardgate/diag/profile_test."

// adminServer serves the real wardgate admin handler (the same
// /debug/pprof/* and /metrics a running gateway exposes) on a loopback
// port.
func adminServer(t *testing.T, token string) string {
	t.Helper()
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "profile-test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tel.AdminHandler(token, nil))
	t.Cleanup(func() {
		srv.Close()
		_ = tel.Shutdown(ctx)
	})
	return srv.URL
}

func client() *http.Client { return &http.Client{Timeout: 2 * time.Minute} }

//go:noinline
func spinHot(stop <-chan struct{}) int {
	x := 0
	for {
		select {
		case <-stop:
			return x
		default:
		}
		for i := 0; i < 100000; i++ {
			x += i ^ (x >> 3)
		}
	}
}

//go:noinline
func spinOther(stop <-chan struct{}) int { return spinHot2(stop) }

//go:noinline
func spinHot2(stop <-chan struct{}) int {
	x := 1
	for {
		select {
		case <-stop:
			return x
		default:
		}
		for i := 0; i < 100000; i++ {
			x += i * (x >> 2)
		}
	}
}

func findEntry(r *profile.TopReport, fn string) (profile.Entry, bool) {
	for _, e := range r.Entries {
		if e.Function == fn {
			return e, true
		}
	}
	return profile.Entry{}, false
}

func TestCPUProfileTopAndLabelFilter(t *testing.T) {
	target := adminServer(t, "")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		pprof.Do(context.Background(), pprof.Labels("trace_id", "spin-trace"), func(context.Context) { spinHot(stop) })
	}()
	go func() { defer wg.Done(); spinOther(stop) }()
	defer func() { close(stop); wg.Wait() }()

	p, raw, err := profile.Fetch(context.Background(), target, profile.CPU, profile.FetchOptions{Client: client(), Seconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatalf("raw profile is not gzip")
	}
	if _, err := gpprof.ParseData(raw); err != nil {
		t.Fatalf("saved bytes do not parse: %v", err)
	}
	top, err := profile.Top(p, profile.CPU.DefaultSampleType(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if top.SampleType != "cpu" || top.Unit != "nanoseconds" {
		t.Fatalf("sample type %s/%s, want cpu/nanoseconds", top.SampleType, top.Unit)
	}
	e, ok := findEntry(top, pkg+"spinHot")
	if !ok || e.Flat <= 0 {
		var buf bytes.Buffer
		_ = top.WriteText(&buf)
		t.Fatalf("spinHot not in cpu top:\n%s", buf.String())
	}
	var buf bytes.Buffer
	if err := top.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "flat%") || !strings.Contains(buf.String(), pkg+"spinHot") {
		t.Fatalf("text top lacks header or function:\n%s", buf.String())
	}

	// --label trace_id=spin-trace keeps only the labeled goroutine's samples.
	l, err := profile.ParseLabel("trace_id=spin-trace")
	if err != nil {
		t.Fatal(err)
	}
	if !profile.FilterLabels(p, []profile.Label{l}) {
		t.Fatal("no sample matched trace_id=spin-trace")
	}
	for _, s := range p.Sample {
		if !s.HasLabel("trace_id", "spin-trace") {
			t.Fatalf("sample without the label survived the filter: %v", s.Label)
		}
	}
	ftop, err := profile.Top(p, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findEntry(ftop, pkg+"spinHot"); !ok {
		t.Fatal("spinHot missing after label filter")
	}
	if _, ok := findEntry(ftop, pkg+"spinHot2"); ok {
		t.Fatal("unlabeled spinHot2 survived the label filter")
	}
}

//go:noinline
func bigAlloc() [][]byte {
	out := make([][]byte, 32)
	for i := range out {
		out[i] = make([]byte, 1<<20)
		out[i][0] = byte(i)
	}
	return out
}

func TestHeapAndAllocsTop(t *testing.T) {
	target := adminServer(t, "")
	keep := bigAlloc()
	runtime.GC() // the heap profile reports as of the last GC
	for _, typ := range []profile.Type{profile.Heap, profile.Allocs} {
		p, raw, err := profile.Fetch(context.Background(), target, typ, profile.FetchOptions{Client: client()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gpprof.ParseData(raw); err != nil {
			t.Fatalf("%s: saved bytes do not parse: %v", typ, err)
		}
		top, err := profile.Top(p, typ.DefaultSampleType(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if top.SampleType != typ.DefaultSampleType() || top.Unit != "bytes" {
			t.Fatalf("%s: sample type %s/%s", typ, top.SampleType, top.Unit)
		}
		e, ok := findEntry(top, pkg+"bigAlloc")
		if !ok || e.Flat < 16<<20 {
			var buf bytes.Buffer
			_ = top.WriteText(&buf)
			t.Fatalf("%s: bigAlloc (32MB) not in top with >=16MB flat (got %+v):\n%s", typ, e, buf.String())
		}
	}
	runtime.KeepAlive(keep)
}

func TestMutexBlockGoroutineParse(t *testing.T) {
	target := adminServer(t, "")
	for _, typ := range []profile.Type{profile.Mutex, profile.Block, profile.Goroutine} {
		p, raw, err := profile.Fetch(context.Background(), target, typ, profile.FetchOptions{Client: client()})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if _, err := gpprof.ParseData(raw); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if _, err := profile.Top(p, typ.DefaultSampleType(), 10); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
}

//go:noinline
func leakyFn(ch <-chan struct{}, in *atomic.Int64) {
	in.Add(1)
	<-ch
}

func TestDiffGoroutineLeak(t *testing.T) {
	target := adminServer(t, "")
	ctx := context.Background()
	opts := profile.FetchOptions{Client: client()}
	base, _, err := profile.Fetch(ctx, target, profile.Goroutine, opts)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	defer close(ch)
	var in atomic.Int64
	for i := 0; i < 500; i++ {
		go leakyFn(ch, &in)
	}
	testutil.WaitCount(t, &in, 500, time.Minute)
	newP, _, err := profile.Fetch(ctx, target, profile.Goroutine, opts)
	if err != nil {
		t.Fatal(err)
	}
	d, err := profile.Diff(base, newP, profile.DiffOptions{Cum: true, N: 0})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_ = d.WriteText(&buf)
	// The total also counts goroutines that come and go between the two
	// fetches (the test server's connection goroutine from the first one
	// can be gone by the second: CI saw +499); leakyFn's own +500 is
	// checked exactly below.
	if d.Delta < 490 {
		t.Fatalf("total delta %d, want about +500:\n%s", d.Delta, buf.String())
	}
	var found bool
	for _, e := range d.Grew {
		if e.Function == pkg+"leakyFn" {
			found = true
			if e.CumDelta != 500 || e.CumBase != 0 || e.CumNew != 500 {
				t.Fatalf("leakyFn grew %+v, want +500 from 0:\n%s", e, buf.String())
			}
		}
	}
	if !found {
		t.Fatalf("leakyFn not among what grew:\n%s", buf.String())
	}
	for _, e := range d.Shrank {
		if e.Function == pkg+"leakyFn" {
			t.Fatal("leakyFn listed as shrinking")
		}
	}
	if !strings.Contains(buf.String(), "Grew") || !strings.Contains(buf.String(), "+500") {
		t.Fatalf("text diff lacks Grew/+500:\n%s", buf.String())
	}

	// The reverse diff shows the same function shrinking.
	rd, err := profile.Diff(newP, base, profile.DiffOptions{Cum: true})
	if err != nil {
		t.Fatal(err)
	}
	found = false
	for _, e := range rd.Shrank {
		found = found || (e.Function == pkg+"leakyFn" && e.CumDelta == -500)
	}
	if !found {
		t.Fatal("reverse diff: leakyFn not shrinking by 500")
	}
}

func TestDiffRejectsDifferentTypes(t *testing.T) {
	target := adminServer(t, "")
	ctx := context.Background()
	opts := profile.FetchOptions{Client: client()}
	g, _, err := profile.Fetch(ctx, target, profile.Goroutine, opts)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := profile.Fetch(ctx, target, profile.Heap, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := profile.Diff(g, h, profile.DiffOptions{}); err == nil {
		t.Fatal("diff of goroutine vs heap profile succeeded")
	}
}

//go:noinline
func labeledWait(ch <-chan struct{}, in *atomic.Int64) {
	in.Add(1)
	<-ch
}

func TestGroupsLabeledGoroutines(t *testing.T) {
	target := adminServer(t, "")
	ch := make(chan struct{})
	defer close(ch)
	var in atomic.Int64
	traceIDs := []string{"4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"}
	for i := 0; i < 20; i++ {
		id := traceIDs[i%2]
		go pprof.Do(context.Background(), pprof.Labels("trace_id", id), func(context.Context) { labeledWait(ch, &in) })
	}
	testutil.WaitCount(t, &in, 20, time.Minute)
	// The goroutines exist; wait until all of them are parked in
	// labeledWait (a just-started goroutine has no labeled frame yet).
	deadline := time.Now().Add(time.Minute)
	var g *profile.Group
	var rep *profile.GroupsReport
	for {
		p, _, err := profile.Fetch(context.Background(), target, profile.Goroutine, profile.FetchOptions{Client: client()})
		if err != nil {
			t.Fatal(err)
		}
		rep, err = profile.Groups(p)
		if err != nil {
			t.Fatal(err)
		}
		g = nil
		for i := range rep.Groups {
			if rep.Groups[i].Where == pkg+"labeledWait" {
				g = &rep.Groups[i]
			}
		}
		if g != nil && g.Count == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no group of 20 in labeledWait: %+v", g)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := g.Labels["trace_id"]
	if len(got) != 2 || got[0] != traceIDs[1] || got[1] != traceIDs[0] {
		t.Fatalf("trace_id values %v, want both ids sorted", got)
	}
	if g.Top != "runtime.gopark" {
		t.Errorf("top frame %q, want runtime.gopark", g.Top)
	}
	var sawFileLine bool
	for _, f := range g.Stack {
		if f.Function == pkg+"labeledWait" && strings.HasSuffix(f.File, "profile_test.go") && f.Line > 0 {
			sawFileLine = true
		}
	}
	if !sawFileLine {
		t.Fatalf("stack lacks labeledWait with file:line: %+v", g.Stack)
	}
	// Groups are sorted by count, descending.
	for i := 1; i < len(rep.Groups); i++ {
		if rep.Groups[i].Count > rep.Groups[i-1].Count {
			t.Fatal("groups not sorted by count")
		}
	}
	var buf bytes.Buffer
	_ = rep.WriteText(&buf)
	if !strings.Contains(buf.String(), "20 goroutine(s)") || !strings.Contains(buf.String(), "label trace_id: "+traceIDs[1]+", "+traceIDs[0]) {
		t.Fatalf("text output:\n%s", buf.String())
	}
}

func TestFetchErrors(t *testing.T) {
	ctx := context.Background()
	c := client()

	// Nothing listening: a port we just closed.
	dead := "http://" + testutil.FreeAddr(t)
	if _, _, err := profile.Fetch(ctx, dead, profile.Heap, profile.FetchOptions{Client: c}); !errors.Is(err, profile.ErrUnreachable) {
		t.Fatalf("unreachable: got %v", err)
	}

	// Token required.
	target := adminServer(t, "s3cret")
	if _, _, err := profile.Fetch(ctx, target, profile.Heap, profile.FetchOptions{Client: c}); !errors.Is(err, profile.ErrUnauthorized) {
		t.Fatalf("no token: got %v", err)
	}
	if _, _, err := profile.Fetch(ctx, target, profile.Heap, profile.FetchOptions{Client: c, Token: "wrong"}); !errors.Is(err, profile.ErrUnauthorized) || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("wrong token: got %v", err)
	}
	if _, _, err := profile.Fetch(ctx, target, profile.Heap, profile.FetchOptions{Client: c, Token: "s3cret"}); err != nil {
		t.Fatalf("right token: %v", err)
	}

	// A listener without pprof (a public listener, say).
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	if _, _, err := profile.Fetch(ctx, plain.URL, profile.Heap, profile.FetchOptions{Client: c}); !errors.Is(err, profile.ErrNotFound) {
		t.Fatalf("no pprof: got %v", err)
	}

	if _, err := profile.ParseType("threads"); err == nil || !strings.Contains(err.Error(), "cpu, heap") {
		t.Fatalf("bad type: got %v", err)
	}
	if _, err := profile.ParseLabel("trace_id"); err == nil {
		t.Fatal("label without = accepted")
	}
}

func TestURL(t *testing.T) {
	for _, c := range []struct {
		target string
		typ    profile.Type
		want   string
	}{
		{"127.0.0.1:6060", profile.CPU, "http://127.0.0.1:6060/debug/pprof/profile?seconds=30"},
		{"http://127.0.0.1:6060/", profile.Goroutine, "http://127.0.0.1:6060/debug/pprof/goroutine?debug=0"},
		{"http://127.0.0.1:6060/debug/pprof/", profile.Heap, "http://127.0.0.1:6060/debug/pprof/heap?gc=1"},
	} {
		got, err := profile.URL(c.target, c.typ, 0)
		if err != nil || got != c.want {
			t.Errorf("URL(%q, %s) = %q, %v; want %q", c.target, c.typ, got, err, c.want)
		}
	}
}
