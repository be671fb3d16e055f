package balancer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestNewErrors(t *testing.T) {
	ts := mkTargets(t, 1)
	cases := []struct {
		name    string
		targets []*Target
		opts    Options
		want    string // substring of the error
	}{
		{"least_connections", ts, Options{}, `unknown policy "least_connections" (valid: random, round_robin, weighted_round_robin, consistent_hash, least_conn, p2c_ewma)`},
		{"", ts, Options{}, "unknown policy"},
		{"random", nil, Options{}, "no targets"},
		{"random", []*Target{nil}, Options{}, "target 0 has no URL"},
		{"consistent_hash", ts, Options{HashOn: "header:"}, "missing name"},
		{"consistent_hash", ts, Options{HashOn: "ip"}, "want header:NAME"},
		{"round_robin", ts, Options{HashOn: "cookies:x"}, "want header:NAME"},
		{"consistent_hash", ts, Options{VirtualNodes: -1}, "virtual nodes -1"},
		{"consistent_hash", ts, Options{BoundedLoad: 1}, "bounded load 1: must be 0 (off) or > 1"},
		{"consistent_hash", ts, Options{BoundedLoad: -2}, "bounded load -2"},
	}
	for _, tc := range cases {
		b, err := New(tc.name, tc.targets, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %d targets, %+v) = %v, %v; want error containing %q", tc.name, len(tc.targets), tc.opts, b, err, tc.want)
		}
	}
}

func TestNewEveryName(t *testing.T) {
	want := []string{"random", "round_robin", "weighted_round_robin", "consistent_hash", "least_conn", "p2c_ewma"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	Names()[0] = "mutated" // callers get a copy
	if Names()[0] != "random" {
		t.Fatal("Names returns shared state")
	}
	for _, name := range want {
		if _, err := New(name, mkTargets(t, 1, 2), Options{HashOn: "path", VirtualNodes: 10, BoundedLoad: 1.5}); err != nil {
			t.Errorf("New(%q): %v", name, err)
		}
	}
}

func TestParseHashOn(t *testing.T) {
	ok := map[string][2]string{
		"":               {"client_ip", ""},
		"client_ip":      {"client_ip", ""},
		"path":           {"path", ""},
		"header:X-User":  {"header", "X-User"},
		"cookie:session": {"cookie", "session"},
		"query:user_id":  {"query", "user_id"},
	}
	for in, want := range ok {
		kind, name, err := ParseHashOn(in)
		if err != nil || kind != want[0] || name != want[1] {
			t.Errorf("ParseHashOn(%q) = %q, %q, %v; want %q, %q", in, kind, name, err, want[0], want[1])
		}
	}
	for _, in := range []string{"ip", "header", "header:", "cookie:", "query:", "body:x", "header:X User", "path:x", "client_ip:x", "Header:X"} {
		if kind, name, err := ParseHashOn(in); err == nil {
			t.Errorf("ParseHashOn(%q) = %q, %q, nil; want an error", in, kind, name)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("ParseHashOn(%q) error %q does not quote the input", in, err)
		}
	}
}

// TestVirtualNodesOption: fewer ring points balance worse; the option is
// honoured (1 point per target leaves the 5-target ring very uneven).
func TestVirtualNodesOption(t *testing.T) {
	ts := mkTargets(t, 1, 1, 1, 1, 1)
	b, err := NewConsistentHash(ts, "", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.ring) != 5 {
		t.Fatalf("ring has %d points, want 5", len(b.ring))
	}
	b, err = NewConsistentHash(mkTargets(t, 1, 3), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.ring) != 4*DefaultVirtualNodes {
		t.Fatalf("ring has %d points, want %d", len(b.ring), 4*DefaultVirtualNodes)
	}
}

func TestCandidates(t *testing.T) {
	ts := mkTargets(t, 1, 1, 1, 1)
	ts[0].SetHealthy(false)
	ts[1].Eject(farFuture)
	got := candidates(ts, []*Target{ts[3]}, farFuture.Add(-1))
	if len(got) != 1 || got[0] != ts[2] {
		t.Fatalf("candidates = %v, want [%v]", got, ts[2])
	}
}

func ExampleNew() {
	var targets []*Target
	for _, s := range []string{"http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003"} {
		u, _ := url.Parse(s)
		targets = append(targets, NewTarget(u, 1))
	}
	b, err := New("round_robin", targets, Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	targets[1].SetHealthy(false) // the health checker's verdict
	for range 4 {
		t, _ := b.Pick(nil, nil)
		fmt.Println(t)
	}
	// Output:
	// http://127.0.0.1:9001
	// http://127.0.0.1:9003
	// http://127.0.0.1:9001
	// http://127.0.0.1:9003
}

func ExampleNew_weighted() {
	var targets []*Target
	for i, w := range []int{5, 1, 1} {
		u, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:900%d", i+1))
		targets = append(targets, NewTarget(u, w))
	}
	b, _ := New("weighted_round_robin", targets, Options{})
	for range 7 {
		t, _ := b.Pick(nil, nil)
		fmt.Print(t.URL.Port(), " ")
	}
	fmt.Println()
	// Output:
	// 9001 9001 9002 9001 9003 9001 9001
}

func ExampleNew_retry() {
	u1, _ := url.Parse("http://127.0.0.1:9001")
	u2, _ := url.Parse("http://127.0.0.1:9002")
	b, _ := New("consistent_hash", []*Target{NewTarget(u1, 1), NewTarget(u2, 1)}, Options{HashOn: "header:X-User", BoundedLoad: 1.25})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-User", "alice")
	var tried []*Target
	for {
		t, err := b.Pick(r, tried)
		if err != nil {
			fmt.Println(err) // the gateway answers 503
			return
		}
		tried = append(tried, t) // the attempt failed: retry elsewhere
		fmt.Println("attempt", len(tried))
	}
	// Output:
	// attempt 1
	// attempt 2
	// no healthy target
}

func ExampleNew_unknown() {
	u, _ := url.Parse("http://127.0.0.1:9001")
	_, err := New("fastest", []*Target{NewTarget(u, 1)}, Options{})
	fmt.Println(err)
	// Output:
	// balancer: unknown policy "fastest" (valid: random, round_robin, weighted_round_robin, consistent_hash, least_conn, p2c_ewma)
}

func ExampleParseHashOn() {
	fmt.Println(ParseHashOn("cookie:session"))
	fmt.Println(ParseHashOn("header"))
	// Output:
	// cookie session <nil>
	//   balancer: hash_on "header": want header:NAME, cookie:NAME, query:NAME, client_ip or path
}

func TestRingSizeLimit(t *testing.T) {
	_, err := New("consistent_hash", mkTargets(t, 100000), Options{})
	if err == nil || !strings.Contains(err.Error(), "lower the weights or virtual nodes") {
		t.Fatalf("New with weight 100000 × 160 points: %v, want a ring size error", err)
	}
}
