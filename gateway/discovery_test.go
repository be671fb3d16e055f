package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsServer is a real DNS server (miekg/dns over UDP on loopback) whose
// records a test changes while the gateway resolves against it.
type dnsServer struct {
	addr string
	srv  *dns.Server

	mu    sync.Mutex
	rrs   []string // zone-file lines, e.g. "jq.test. 1 IN A 127.0.0.2"
	rcode int      // answered instead of the records when not NOERROR
	extra bool     // put the A records of SRV targets in the additional section
	// cnames answers a question for a key with "key CNAME value" followed
	// by value's records of the asked type, as a recursive resolver does.
	cnames map[string]string
	// queries counts the questions received.
	queries atomic.Int64
}

func newDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String()}
	d.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	started := make(chan struct{})
	d.srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = d.srv.ActivateAndServe() }()
	<-started
	t.Cleanup(d.stop)
	return d
}

func (d *dnsServer) stop() { _ = d.srv.Shutdown() }

func (d *dnsServer) set(rcode int, rrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rcode, d.rrs = rcode, rrs
}

func (d *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	d.queries.Add(1)
	d.mu.Lock()
	rcode, lines, extra, cnames := d.rcode, d.rrs, d.extra, d.cnames
	d.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	if rcode != dns.RcodeSuccess {
		m.Rcode = rcode
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	if to, ok := cnames[strings.ToLower(q.Name)]; ok {
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 1}, Target: to})
		q.Name = to
	}
	var srvTargets []string
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			panic(fmt.Sprintf("bad test record %q: %v", l, err))
		}
		if strings.EqualFold(rr.Header().Name, q.Name) && rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, rr)
			if s, ok := rr.(*dns.SRV); ok {
				srvTargets = append(srvTargets, s.Target)
			}
		}
	}
	if extra {
		for _, l := range lines {
			rr, _ := dns.NewRR(l)
			for _, tg := range srvTargets {
				if strings.EqualFold(rr.Header().Name, tg) && rr.Header().Rrtype == dns.TypeA {
					m.Extra = append(m.Extra, rr)
				}
			}
		}
	}
	_ = w.WriteMsg(m)
}

// loopbackBackends starts one backend per address 127.0.0.N (N = 2, 3,
// ...) all on the same port, as the pods behind a headless Service are.
func loopbackBackends(t *testing.T, names []string, h func(name string) http.HandlerFunc) (map[string]*backend, int) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		l0, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l0.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{l0}
		ok := true
		for i := 1; i < len(names); i++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0."+strconv.Itoa(i+2), strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		if !ok {
			for _, l := range ls {
				l.Close()
			}
			continue
		}
		out := map[string]*backend{}
		for i, n := range names {
			var hf http.HandlerFunc
			if h != nil {
				hf = h(n)
			}
			out[n] = startOn(t, n, ls[i], hf)
		}
		return out, port
	}
	t.Fatal("no common free port on 127.0.0.2..")
	return nil, 0
}

// startOn serves a backend like newBackend on l.
func startOn(t *testing.T, name string, l net.Listener, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

// setURLs returns the target URLs of upstream u's current set.
func (f *fixture) setURLs(u string) []string {
	var out []string
	for _, t := range f.g.table.Load().upstreams[u].set.Load().targets {
		out = append(out, fmt.Sprintf("%s*%d", t.String(), t.Weight))
	}
	return out
}

func (f *fixture) waitSet(t *testing.T, u string, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("upstream %s targets = %v", u, want), func() bool {
		return strings.Join(f.setURLs(u), " ") == strings.Join(want, " ")
	})
}

// hitsByBackend sends n GETs and counts the X-Backend of each answer.
func hitsByBackend(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		resp, body := get(t, url)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
		}
		got[resp.Header.Get("X-Backend")]++
	}
	return got
}

func discoverCfg(balancer, discover string) string {
	return "routes:\n  - path_prefix: /\n    upstream: u\n" +
		"upstreams:\n  u:\n    balancer: " + balancer + "\n    retries: 0\n    discover: " + discover + "\n"
}

// metricValue returns the value of the /metrics series whose line holds
// every one of parts, or -1.
func (f *fixture) metricValue(t *testing.T, name string, parts ...string) float64 {
	t.Helper()
	_, body := get(t, f.admin.URL+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			v, _ := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
			return v
		}
	}
	return -1
}

// TestDiscoverARecords: targets follow A records appearing and
// disappearing; a target present before and after a change keeps its
// state (same object: health, failures, EWMA); a removed one gets no new
// request.
func TestDiscoverARecords(t *testing.T) {
	bes, port := loopbackBackends(t, []string{"a", "b", "c"}, nil)
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.2", "jq.test. 1 IN A 127.0.0.3")
	f := newFixture(t, discoverCfg("round_robin",
		fmt.Sprintf("{name: jq.test, port: %d, interval: 100ms, resolver: %q}", port, d.addr)))
	url := func(ip string) string { return fmt.Sprintf("http://%s:%d*1", ip, port) }
	// The first resolution happens in New: no 503 window at start.
	if got := f.setURLs("u"); strings.Join(got, " ") != url("127.0.0.2")+" "+url("127.0.0.3") {
		t.Fatalf("targets after New = %v", got)
	}
	if got := hitsByBackend(t, f.public.URL+"/x", 10); got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("round robin over a, b: %v", got)
	}
	keptB := f.g.table.Load().upstreams["u"].set.Load().targets[1]
	keptB.ObserveLatency(42 * time.Millisecond)

	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.3", "jq.test. 1 IN A 127.0.0.4")
	f.waitSet(t, "u", url("127.0.0.3"), url("127.0.0.4"))
	if b := f.g.table.Load().upstreams["u"].set.Load().targets[0]; b != keptB || b.Requests() != 5 {
		t.Fatalf("target b lost its state across the change (same=%v, requests=%d)", b == keptB, b.Requests())
	}
	aBefore := bes["a"].hits.Load()
	if got := hitsByBackend(t, f.public.URL+"/x", 10); got["b"] != 5 || got["c"] != 5 {
		t.Fatalf("after a left and c came: %v", got)
	}
	if bes["a"].hits.Load() != aBefore {
		t.Fatal("a removed target still got requests")
	}
	if v := f.metricValue(t, "wardgate_discovery_targets", `upstream="u"`); v != 2 {
		t.Fatalf("wardgate_discovery_targets = %v, want 2", v)
	}
	if len(f.logs.lines("dns discovery: targets changed")) == 0 {
		t.Fatal("no log line for the change")
	}
}

// TestDiscoverSRVWeights: SRV records give port and weight; the weighted
// round robin follows a weight change.
func TestDiscoverSRVWeights(t *testing.T) {
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	pa, pb := a.Listener.Addr().(*net.TCPAddr).Port, b.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	srv := func(wa, wb int) []string {
		return []string{
			fmt.Sprintf("_http._tcp.jq.test. 1 IN SRV 10 %d %d a.jq.test.", wa, pa),
			fmt.Sprintf("_http._tcp.jq.test. 1 IN SRV 10 %d %d b.jq.test.", wb, pb),
			"_http._tcp.jq.test. 1 IN SRV 20 100 9 backup.jq.test.", // higher priority value: unused
			"a.jq.test. 1 IN A 127.0.0.1", "b.jq.test. 1 IN A 127.0.0.1", "backup.jq.test. 1 IN A 127.0.0.9",
		}
	}
	d.set(dns.RcodeSuccess, srv(3, 1)...)
	f := newFixture(t, discoverCfg("weighted_round_robin",
		fmt.Sprintf("{name: _http._tcp.jq.test, type: srv, interval: 100ms, resolver: %q}", d.addr)))
	ua, ub := fmt.Sprintf("http://127.0.0.1:%d", pa), fmt.Sprintf("http://127.0.0.1:%d", pb)
	f.waitSet(t, "u", sortedPair(ua+"*3", ub+"*1")...)
	if got := hitsByBackend(t, f.public.URL+"/", 40); got["a"] != 30 || got["b"] != 10 {
		t.Fatalf("weights 3:1 over 40 requests: %v", got)
	}
	d.mu.Lock()
	d.extra = true // addresses from the additional section this time
	d.mu.Unlock()
	var aTarget *target
	for _, tg := range f.g.table.Load().upstreams["u"].set.Load().targets {
		if tg.String() == ua {
			aTarget = tg
		}
	}
	aTarget.SetHealthy(false)             // as an active check would; must survive the weight change
	d.set(dns.RcodeSuccess, srv(1, 0)...) // weight 0 counts as 1
	f.waitSet(t, "u", sortedPair(ua+"*1", ub+"*1")...)
	for _, tg := range f.g.table.Load().upstreams["u"].set.Load().targets {
		if tg.String() == ua && (tg.Healthy() || tg.Requests() != 30) {
			t.Fatalf("a's state lost with its weight change: healthy=%v requests=%d", tg.Healthy(), tg.Requests())
		}
		if tg.String() == ua {
			tg.SetHealthy(true)
		}
	}
	if got := hitsByBackend(t, f.public.URL+"/", 40); got["a"] != 20 || got["b"] != 20 {
		t.Fatalf("weights 1:1 over 40 requests: %v", got)
	}
}

func sortedPair(x, y string) []string {
	if x > y {
		x, y = y, x
	}
	return []string{x, y}
}

// TestDiscoverFailuresKeepLastGoodSet: SERVFAIL, an empty answer, NXDOMAIN
// and the server going away each keep the last good set (traffic still
// served), and each is counted by reason.
func TestDiscoverFailuresKeepLastGoodSet(t *testing.T) {
	a := newBackend(t, "a", nil)
	pa := a.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1")
	f := newFixture(t, discoverCfg("round_robin",
		fmt.Sprintf("{name: jq.test, port: %d, interval: 50ms, timeout: 300ms, resolver: %q}", pa, d.addr)))
	want := fmt.Sprintf("http://127.0.0.1:%d*1", pa)
	f.waitSet(t, "u", want)
	// Every known reason is served at 0 before any failure (no "No data").
	for _, reason := range []string{"servfail", "empty", "nxdomain", "network", "timeout", "refused"} {
		if v := f.metricValue(t, "wardgate_discovery_errors_total", `upstream="u"`, `reason="`+reason+`"`); v != 0 {
			t.Fatalf("wardgate_discovery_errors_total{reason=%q} before any failure = %v, want 0", reason, v)
		}
	}
	steps := []struct {
		reason string
		apply  func()
	}{
		{"servfail", func() { d.set(dns.RcodeServerFailure) }},
		{"empty", func() { d.set(dns.RcodeSuccess) }},
		{"nxdomain", func() { d.set(dns.RcodeNameError) }},
		{"network|timeout", d.stop}, // the server goes away
	}
	for _, s := range steps {
		before := map[string]float64{}
		reasons := strings.Split(s.reason, "|")
		for _, r := range reasons {
			before[r] = max(f.metricValue(t, "wardgate_discovery_errors_total", `upstream="u"`, `reason="`+r+`"`), 0)
		}
		s.apply()
		waitFor(t, "wardgate_discovery_errors_total{reason="+s.reason+"} to grow", func() bool {
			for _, r := range reasons {
				if f.metricValue(t, "wardgate_discovery_errors_total", `upstream="u"`, `reason="`+r+`"`) > before[r] {
					return true
				}
			}
			return false
		})
		if got := strings.Join(f.setURLs("u"), " "); got != want {
			t.Fatalf("after %s the set is %q, want the last good %q", s.reason, got, want)
		}
		if got := hitsByBackend(t, f.public.URL+"/", 3); got["a"] != 3 {
			t.Fatalf("after %s: %v", s.reason, got)
		}
	}
	if len(f.logs.lines("dns discovery failed, keeping the last good targets")) == 0 {
		t.Fatal("failures were not logged")
	}
}

// TestDiscoverAllowEmpty: with allow_empty an empty answer empties the
// pool (503 no healthy target) and records coming back refill it.
func TestDiscoverAllowEmpty(t *testing.T) {
	a := newBackend(t, "a", nil)
	pa := a.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess)
	f := newFixture(t, discoverCfg("round_robin",
		fmt.Sprintf("{name: jq.test, port: %d, interval: 50ms, allow_empty: true, resolver: %q}", pa, d.addr)))
	if resp, body := get(t, f.public.URL+"/"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("empty pool: %d %s", resp.StatusCode, body)
	}
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1")
	f.waitSet(t, "u", fmt.Sprintf("http://127.0.0.1:%d*1", pa))
	if resp, body := get(t, f.public.URL+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("refilled pool: %d %s", resp.StatusCode, body)
	}
}

// TestDiscoverInflightSurvivesRemoval: a request in flight on a target
// whose record disappears completes; new requests go to the new target.
func TestDiscoverInflightSurvivesRemoval(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	bes, port := loopbackBackends(t, []string{"a", "b"}, func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if name == "a" {
				entered <- struct{}{}
				<-release
			}
			fmt.Fprintf(w, "%s done", name)
		}
	})
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.2")
	f := newFixture(t, discoverCfg("round_robin",
		fmt.Sprintf("{name: jq.test, port: %d, interval: 50ms, resolver: %q}", port, d.addr)))
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(f.public.URL + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow request never reached a")
	}
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.3")
	f.waitSet(t, "u", fmt.Sprintf("http://127.0.0.3:%d*1", port))
	if got := hitsByBackend(t, f.public.URL+"/fast", 3); got["b"] != 3 {
		t.Fatalf("new requests after a left: %v", got)
	}
	close(release)
	select {
	case r := <-done:
		if r.err != nil || r.status != http.StatusOK || r.body != "a done" {
			t.Fatalf("in-flight request on the removed target: %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight request never completed")
	}
	if bes["a"].hits.Load() != 1 {
		t.Fatalf("a got %d requests, want only the in-flight one", bes["a"].hits.Load())
	}
}

// TestDiscoverConsistentHashMinimalRemap: when a target is added, keys
// that stay on a surviving target keep it: only keys moving to the new
// target change.
func TestDiscoverConsistentHashMinimalRemap(t *testing.T) {
	_, port := loopbackBackends(t, []string{"a", "b", "c"}, nil)
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.2", "jq.test. 1 IN A 127.0.0.3")
	f := newFixture(t, strings.Replace(discoverCfg("consistent_hash",
		fmt.Sprintf("{name: jq.test, port: %d, interval: 50ms, resolver: %q}", port, d.addr)),
		"    retries: 0\n", "    retries: 0\n    hash_on: header:X-Key\n", 1))
	owner := func() map[string]string {
		m := map[string]string{}
		for i := range 60 {
			k := "k" + strconv.Itoa(i)
			resp, _ := get(t, f.public.URL+"/", "X-Key", k)
			m[k] = resp.Header.Get("X-Backend")
		}
		return m
	}
	before := owner()
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.2", "jq.test. 1 IN A 127.0.0.3", "jq.test. 1 IN A 127.0.0.4")
	f.waitSet(t, "u", fmt.Sprintf("http://127.0.0.2:%d*1", port), fmt.Sprintf("http://127.0.0.3:%d*1", port), fmt.Sprintf("http://127.0.0.4:%d*1", port))
	moved := 0
	for k, o := range owner() {
		if o != before[k] {
			if o != "c" {
				t.Fatalf("key %s moved from %s to %s, not to the new target", k, before[k], o)
			}
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no key moved to the new target")
	}
}

// TestDiscoverReloadAndClose: a reload with the same discover: block keeps
// the discovered targets (same objects, no new resolution needed to
// serve); the old table's loop stops, and Close stops the new one: the DNS
// server hears nothing more.
func TestDiscoverReloadAndClose(t *testing.T) {
	a := newBackend(t, "a", nil)
	pa := a.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1")
	cfg := discoverCfg("round_robin", fmt.Sprintf("{name: jq.test, port: %d, interval: 50ms, resolver: %q}", pa, d.addr))
	f := newFixture(t, cfg)
	before := f.g.table.Load().upstreams["u"].set.Load().targets[0]
	next, err := Parse([]byte(strings.Replace(cfg, "retries: 0", "retries: 1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	d.stop() // the reload must not need DNS when discover: is unchanged
	if err := f.g.Reload(next); err != nil {
		t.Fatal(err)
	}
	if after := f.g.table.Load().upstreams["u"].set.Load().targets; len(after) != 1 || after[0] != before {
		t.Fatalf("reload lost the discovered target: %v", f.setURLs("u"))
	}
	if got := hitsByBackend(t, f.public.URL+"/", 2); got["a"] != 2 {
		t.Fatalf("after reload: %v", got)
	}

	d2 := newDNSServer(t)
	d2.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1")
	next, err = Parse([]byte(strings.Replace(cfg, d.addr, d2.addr, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.Reload(next); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new table's loop to query the new resolver", func() bool { return d2.queries.Load() > 4 })
	f.g.Close()
	// A question sent just before Close may still be on its way to the
	// server: let it land, then watch ten intervals for a leaked loop.
	time.Sleep(200 * time.Millisecond)
	n := d2.queries.Load()
	time.Sleep(500 * time.Millisecond)
	if m := d2.queries.Load(); m != n {
		t.Fatalf("discovery kept resolving after Close: %d more queries", m-n)
	}
}

// TestDiscoverHealthChecks: discovered targets are actively checked; a
// target that appears with a failing health endpoint is marked down and
// gets no traffic.
func TestDiscoverHealthChecks(t *testing.T) {
	bes, port := loopbackBackends(t, []string{"a", "b"}, func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if name == "b" && r.URL.Path == "/healthz" {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			fmt.Fprint(w, name)
		}
	})
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.2")
	f := newFixture(t, discoverCfg("round_robin",
		fmt.Sprintf("{name: jq.test, port: %d, interval: 50ms, resolver: %q}\n    health_check: {path: /healthz, interval: 50ms, fall: 1}", port, d.addr)))
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.2", "jq.test. 1 IN A 127.0.0.3")
	f.waitSet(t, "u", fmt.Sprintf("http://127.0.0.2:%d*1", port), fmt.Sprintf("http://127.0.0.3:%d*1", port))
	waitFor(t, "b marked down by its health check", func() bool {
		ts := f.g.table.Load().upstreams["u"].set.Load().targets
		return len(ts) == 2 && !ts[1].Healthy()
	})
	if got := hitsByBackend(t, f.public.URL+"/x", 6); got["a"] != 6 || bes["a"].hits.Load() < 6 {
		t.Fatalf("traffic with b down: %v", got)
	}
}

// TestDiscoverChurnUnderLoad: while the answer changes over and over
// (every subset of three addresses in turn), concurrent clients get no
// error at all: every swap keeps in-flight requests and never leaves an
// empty pool.
func TestDiscoverChurnUnderLoad(t *testing.T) {
	_, port := loopbackBackends(t, []string{"a", "b", "c"}, nil)
	d := newDNSServer(t)
	subsets := [][]string{{"2", "3"}, {"3", "4"}, {"2", "4"}, {"2", "3", "4"}, {"4"}, {"2"}}
	records := func(s []string) []string {
		var rrs []string
		for _, n := range s {
			rrs = append(rrs, "jq.test. 0 IN A 127.0.0."+n)
		}
		return rrs
	}
	d.set(dns.RcodeSuccess, records(subsets[0])...)
	f := newFixture(t, discoverCfg("least_conn",
		fmt.Sprintf("{name: jq.test, port: %d, interval: 20ms, resolver: %q}", port, d.addr)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(f.public.URL + "/x")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		})
	}
	changes := 0
	for i := 1; changes < 30; i++ {
		s := subsets[i%len(subsets)]
		d.set(dns.RcodeSuccess, records(s)...)
		var want []string
		for _, n := range s {
			want = append(want, fmt.Sprintf("http://127.0.0.%s:%d*1", n, port))
		}
		f.waitSet(t, "u", want...)
		changes++
		served := ok.Load()
		waitFor(t, "requests served on the new set", func() bool { return ok.Load() > served+5 || failed.Load() > 0 })
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests served across %d DNS changes, %d errors", ok.Load(), changes, failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during DNS churn (first: %v)", failed.Load(), firstErr.Load())
	}
}

// TestDiscoverHonoursShortTTL: with an interval of an hour, a record TTL
// of 1s still makes the gateway follow a change within seconds.
func TestDiscoverHonoursShortTTL(t *testing.T) {
	a := newBackend(t, "a", nil)
	pa := a.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1")
	f := newFixture(t, discoverCfg("round_robin",
		fmt.Sprintf("{name: jq.test, port: %d, interval: 1h, resolver: %q}", pa, d.addr)))
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1", "jq.test. 1 IN A 127.0.0.5")
	f.waitSet(t, "u", fmt.Sprintf("http://127.0.0.1:%d*1", pa), fmt.Sprintf("http://127.0.0.5:%d*1", pa))
}

// TestE2EDiscover runs the wardgate binary on a config with discover:: it
// serves the discovered targets, follows a change, keeps the last good set
// when the DNS server goes away and says so in its log and /metrics, and a
// hot reload of the file keeps serving.
func TestE2EDiscover(t *testing.T) {
	started := time.Now()
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	pa, pb := a.Listener.Addr().(*net.TCPAddr).Port, b.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, fmt.Sprintf("_http._tcp.jq.test. 1 IN SRV 0 1 %d a.jq.test.", pa), "a.jq.test. 1 IN A 127.0.0.1")
	cfg := discoverCfg("round_robin", fmt.Sprintf("{name: _http._tcp.jq.test, type: srv, interval: 100ms, timeout: 300ms, resolver: %q}", d.addr))
	p := startGateway(t, cfg)
	ub := fmt.Sprintf("http://127.0.0.1:%d", pb)
	targets := func() string {
		var urls []string
		for _, ts := range p.upstreams(t)["u"].Targets {
			urls = append(urls, ts.URL)
		}
		return strings.Join(urls, " ")
	}
	if got := hitsByBackend(t, p.public+"/", 2); got["a"] != 2 {
		t.Fatalf("first answer: %v (targets %s)", got, targets())
	}
	d.set(dns.RcodeSuccess, fmt.Sprintf("_http._tcp.jq.test. 1 IN SRV 0 1 %d b.jq.test.", pb), "b.jq.test. 1 IN A 127.0.0.1")
	waitFor(t, "the binary to follow the SRV change to b", func() bool { return targets() == ub })
	d.stop()
	waitFor(t, "a discovery error in the log", func() bool {
		return len(p.logs.lines("dns discovery failed, keeping the last good targets")) > 0
	})
	if got := hitsByBackend(t, p.public+"/", 2); got["b"] != 2 {
		t.Fatalf("with the DNS server gone: %v", got)
	}
	_, metrics := get(t, p.admin+"/metrics")
	if !regexpMatch(`wardgate_discovery_errors_total\{[^}]*reason="(network|timeout)"[^}]*upstream="u"[^}]*\} [1-9]`, metrics) {
		t.Fatalf("/metrics lacks a counted discovery error:\n%s", grepLines(metrics, "wardgate_discovery"))
	}
	// The time of the last good answer stays where it was while DNS is
	// gone (a few failed re-resolutions later), so its age grows.
	lastGood := func() time.Time {
		_, metrics := get(t, p.admin+"/metrics")
		m := regexp.MustCompile(`(?m)^wardgate_discovery_last_success_seconds\{[^}]*upstream="u"[^}]*\} (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("/metrics lacks wardgate_discovery_last_success_seconds for u:\n%s", grepLines(metrics, "wardgate_discovery"))
		}
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.Unix(0, int64(f*1e9))
	}
	before := lastGood()
	if age := time.Since(before); age < 0 || age > time.Minute || before.Before(started) {
		t.Fatalf("last good answer at %s, test started at %s", before, started)
	}
	time.Sleep(500 * time.Millisecond) // five re-resolutions, all failing
	if after := lastGood(); !after.Equal(before) {
		t.Fatalf("last good answer moved from %s to %s while the DNS server was gone", before, after)
	}
	p.writeConfig(t, strings.Replace(cfg, "retries: 0", "retries: 1", 1))
	waitFor(t, "the reload", func() bool { return strings.Contains(p.logs.String(), "config reloaded") })
	if got := hitsByBackend(t, p.public+"/", 2); got["b"] != 2 || targets() != ub {
		t.Fatalf("after a reload with the DNS server gone: %v, targets %s", got, targets())
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// TestDiscoverCNAMEAndDotTarget: A records reached through a CNAME chain
// are used, and an SRV record whose target is "." (service not available
// there) is skipped.
func TestDiscoverCNAMEAndDotTarget(t *testing.T) {
	a := newBackend(t, "a", nil)
	pa := a.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	// The test server answers only exact name and type matches, so the
	// CNAME is served for type A by listing the chain under both types.
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1")
	cname := discoverCfg("round_robin", fmt.Sprintf("{name: alias.test, port: %d, interval: 50ms, resolver: %q}", pa, d.addr))
	d.mu.Lock()
	d.cnames = map[string]string{"alias.test.": "jq.test."}
	d.mu.Unlock()
	f := newFixture(t, cname)
	f.waitSet(t, "u", fmt.Sprintf("http://127.0.0.1:%d*1", pa))

	d.set(dns.RcodeSuccess,
		fmt.Sprintf("_http._tcp.s.test. 1 IN SRV 0 1 %d a.s.test.", pa), "_http._tcp.s.test. 1 IN SRV 0 1 80 .",
		"a.s.test. 1 IN A 127.0.0.1")
	f2 := newFixture(t, discoverCfg("round_robin", fmt.Sprintf("{name: _http._tcp.s.test, type: srv, interval: 50ms, resolver: %q}", d.addr)))
	f2.waitSet(t, "u", fmt.Sprintf("http://127.0.0.1:%d*1", pa))
}

// TestDiscoverFailingAtStart: a gateway whose DNS fails at start still
// starts (503, error counted) and serves once the records appear.
func TestDiscoverFailingAtStart(t *testing.T) {
	a := newBackend(t, "a", nil)
	pa := a.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	d.set(dns.RcodeServerFailure)
	f := newFixture(t, discoverCfg("round_robin", fmt.Sprintf("{name: jq.test, port: %d, interval: 50ms, resolver: %q}", pa, d.addr)))
	if resp, body := get(t, f.public.URL+"/"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("no targets yet: %d %s", resp.StatusCode, body)
	}
	if v := f.metricValue(t, "wardgate_discovery_errors_total", `reason="servfail"`, `upstream="u"`); v < 1 {
		t.Fatalf("servfail at start not counted: %v", v)
	}
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1")
	f.waitSet(t, "u", fmt.Sprintf("http://127.0.0.1:%d*1", pa))
	if got := hitsByBackend(t, f.public.URL+"/", 2); got["a"] != 2 {
		t.Fatalf("after the records appeared: %v", got)
	}
}

// TestDiscoverReloadWhileDNSFails: a reload that changes discover: (here
// its interval) while the DNS server fails keeps the last good targets.
func TestDiscoverReloadWhileDNSFails(t *testing.T) {
	a := newBackend(t, "a", nil)
	pa := a.Listener.Addr().(*net.TCPAddr).Port
	d := newDNSServer(t)
	d.set(dns.RcodeSuccess, "jq.test. 1 IN A 127.0.0.1")
	cfg := discoverCfg("round_robin", fmt.Sprintf("{name: jq.test, port: %d, interval: 50ms, resolver: %q}", pa, d.addr))
	f := newFixture(t, cfg)
	d.set(dns.RcodeServerFailure)
	next, err := Parse([]byte(strings.Replace(cfg, "interval: 50ms", "interval: 60ms", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.Reload(next); err != nil {
		t.Fatal(err)
	}
	if got := hitsByBackend(t, f.public.URL+"/", 2); got["a"] != 2 {
		t.Fatalf("after the reload with DNS failing: %v", got)
	}
}
