package findings_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/diag/findings"
)

func ExampleClassifier_Culprit() {
	c := findings.NewClassifier("example.com/shop", nil)
	stack := []findings.Frame{
		{Function: "runtime.gopark"},
		{Function: "net/http.(*persistConn).roundTrip"},
		{Function: "net/http.(*Client).Do"},
		{Function: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp.(*Transport).RoundTrip"},
		{Function: "example.com/shop/billing.(*client).charge", File: "/src/billing/client.go", Line: 88},
		{Function: "github.com/wardgate/wardgate/jobqueue.callHandler"},
		{Function: "github.com/wardgate/wardgate/jobqueue.(*Queue).worker"},
	}
	fmt.Println(stack[c.Culprit(stack)].Short())
	// Output: example.com/shop/billing.(*client).charge (billing/client.go:88)
}

func TestClassifierTiers(t *testing.T) {
	c := findings.NewClassifier("example.com/shop", nil)
	for fn, want := range map[string]bool{
		"main.main":                                             true,
		"example.com/shop.(*S).Put":                             true,
		"example.com/shop/billing.charge.func1":                 true,
		"example.com/shopping.Other":                            false,
		"net/http.(*Server).Serve":                              false,
		"github.com/wardgate/wardgate/jobqueue.(*Queue).worker": false,
		"runtime.gopark":                                        false,
	} {
		if got := c.IsApp(fn); got != want {
			t.Errorf("IsApp(%s) = %v, want %v", fn, got, want)
		}
	}
	// --app narrows: only the billing service.
	n := findings.NewClassifier("example.com/shop", []string{"example.com/shop/billing"})
	if n.IsApp("example.com/shop.(*S).Put") || !n.IsApp("example.com/shop/billing.charge") {
		t.Error("--app did not narrow to example.com/shop/billing")
	}
	// Main module unknown (remote target): anything outside the standard
	// library, known libraries and wardgate.
	u := findings.NewClassifier("", nil)
	if !u.IsApp("example.com/x.F") || u.IsApp("go.opentelemetry.io/otel.F") || u.IsApp("github.com/wardgate/wardgate/jobqueue.F") || u.IsApp("sync.(*Mutex).Lock") {
		t.Error("unknown main module: wrong split")
	}
	// wardgate analyzing itself: its packages are the application.
	w := findings.NewClassifier("github.com/wardgate/wardgate", nil)
	if !w.IsApp("github.com/wardgate/wardgate/jobqueue.(*Queue).worker") {
		t.Error("wardgate's own main module is not application code")
	}
}

// TestIdleNeverOutranksStuck: a big idle accept/worker population and two
// goroutines deadlocked on locks: the deadlock is the first finding and
// the idle ones fold into one line.
func TestIdleNeverOutranksStuck(t *testing.T) {
	c := findings.NewClassifier("example.com/shop", nil)
	lock := func(line int, id int64, lockAddr string) findings.Group {
		return findings.Group{Ref: fmt.Sprint("#", id), Count: 1, State: "waiting", WaitReason: "sync.Mutex.Lock", WaitSeconds: 120,
			IDs: []int64{id}, Locks: []string{lockAddr},
			Frames: []findings.Frame{{Function: "internal/sync.runtime_SemacquireMutex"}, {Function: "sync.(*Mutex).Lock"},
				{Function: "example.com/shop.(*ledger).move", File: "/src/ledger.go", Line: line}, {Function: "example.com/shop.handle"},
				{Function: "net/http.HandlerFunc.ServeHTTP"}, {Function: "net/http.(*conn).serve"}}}
	}
	s := &findings.Snapshot{Groups: []findings.Group{
		{Ref: "#accept", Count: 1, State: "waiting", WaitReason: "IO wait", Frames: []findings.Frame{{Function: "internal/poll.runtime_pollWait"}, {Function: "net.(*TCPListener).Accept"}, {Function: "net/http.(*Server).Serve"}, {Function: "main.main"}}},
		{Ref: "#conns", Count: 800, State: "waiting", WaitReason: "IO wait", Frames: []findings.Frame{{Function: "internal/poll.runtime_pollWait"}, {Function: "net/http.(*connReader).backgroundRead"}}},
		{Ref: "#workers", Count: 64, State: "waiting", WaitReason: "chan receive", Frames: []findings.Frame{{Function: "runtime.chanrecv1"}, {Function: "github.com/wardgate/wardgate/jobqueue.(*Queue).worker"}}},
		lock(40, 7, "0xc000010000"),
		lock(44, 8, "0xc000010008"),
	}}
	r := findings.Goroutines(c, s, findings.GoroutineOptions{})
	if len(r.Findings) != 1 || r.Findings[0].Kind != findings.KindDeadlock || r.Findings[0].Function != "example.com/shop.(*ledger).move" ||
		r.Findings[0].Severity != findings.Critical || r.Findings[0].Goroutines != 2 {
		t.Fatalf("findings %+v, want one critical deadlock in (*ledger).move over 2 goroutines", r.Findings)
	}
	if r.Idle == nil || r.Idle.Goroutines != 865 {
		t.Fatalf("idle %+v, want 865 goroutines folded", r.Idle)
	}
	var b strings.Builder
	if err := r.WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if lines[0] != "Findings" || !strings.Contains(lines[1], "deadlock in example.com/shop.(*ledger).move (src/ledger.go:") {
		t.Fatalf("text:\n%s", b.String())
	}
}

func TestNothingSuspiciousIsOneLine(t *testing.T) {
	var r findings.Result
	var b strings.Builder
	if err := r.WriteText(&b, true); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(strings.TrimSpace(b.String()), "\n"); got != 2 || !strings.Contains(b.String(), "No findings") {
		t.Fatalf("markdown for no findings:\n%s", b.String())
	}
}

func TestHeldLocksFromSource(t *testing.T) {
	src := func(string) []string {
		return strings.Split(`package p

func (s *S) move(a, b *acct) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s.stats.mu.Lock()
	s.stats.n++
	s.stats.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
}`, "\n")
	}
	c := findings.NewClassifier("example.com/p", nil)
	g := func(id int64, line int) findings.Group {
		return findings.Group{Ref: fmt.Sprint("#", id), Count: 1, State: "waiting", WaitReason: "sync.Mutex.Lock", WaitSeconds: 90, IDs: []int64{id},
			Frames: []findings.Frame{{Function: "sync.(*Mutex).Lock"}, {Function: "example.com/p.(*S).move", File: "/src/p.go", Line: line}}}
	}
	r := findings.Goroutines(c, &findings.Snapshot{Groups: []findings.Group{g(1, 9), g(2, 4)}}, findings.GoroutineOptions{Source: src})
	if len(r.Findings) != 1 || r.Findings[0].Kind != findings.KindDeadlock {
		t.Fatalf("findings %+v", r.Findings)
	}
	ev := strings.Join(r.Findings[0].Evidence, "\n")
	if !strings.Contains(ev, "(goroutine 1) hold a.mu (locked at line 4) and wait for b.mu") || strings.Contains(ev, "stats.mu (locked") {
		t.Fatalf("evidence:\n%s", ev)
	}
}
