package gateway

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

// BenchmarkDiscoveryChurn is issue #15's measure of DNS discovery under
// load (docs/benchmarks.md, section discovery): the wardgate binary serves
// closed-loop GETs from DISCOVERY_CONNS clients (default 4) for
// DISCOVERY_DURATION (default 60s) while the SRV answer of its upstream
// changes every second on average, as a rolling update of a headless
// Service does: six loopback backends, two in the answer at a time, each
// change adding one backend and removing another (record TTL 1s, discover
// interval 1s, health checks, passive ejection and one retry as in
// deploy/kubernetes/base/gateway-config.yaml). The gap between changes is
// drawn uniformly from [0.5s, 1.5s) (fixed seed): a fixed 1s period would
// lock onto the gateway's own 1s re-resolve cycle and measure one phase of
// it, always the same.
//
// It reports the requests served, the errors (any transport error or
// non-200 answer: the benchmark fails on one), the p50 and p99 answer
// time, and over every change the time from the DNS answer changing to
// traffic following it, seen by the backends: follow is until the first
// request reaches the added backend, leave until the last request reaches
// the removed one. Both are bounded below by the re-resolve interval, so
// they read as "within one interval", not as gateway speed.
func BenchmarkDiscoveryChurn(b *testing.B) {
	duration := envDuration(b, "DISCOVERY_DURATION", 60*time.Second)
	conns := 4
	if v := os.Getenv("DISCOVERY_CONNS"); v != "" {
		if _, err := fmt.Sscan(v, &conns); err != nil || conns < 1 {
			b.Fatalf("DISCOVERY_CONNS=%q: want a positive integer", v)
		}
	}
	for range b.N {
		r := runDiscoveryChurn(b, duration, conns)
		b.ReportMetric(float64(r.requests), "requests")
		b.ReportMetric(float64(r.errors), "errors")
		b.ReportMetric(ms(pct(r.latencies, 0.50)), "p50-ms")
		b.ReportMetric(ms(pct(r.latencies, 0.99)), "p99-ms")
		b.ReportMetric(float64(r.changes), "changes")
		b.ReportMetric(ms(pct(r.follow, 0.50)), "follow-p50-ms")
		b.ReportMetric(ms(pct(r.follow, 0.99)), "follow-p99-ms")
		b.ReportMetric(ms(pct(r.leave, 0.50)), "leave-p50-ms")
		b.ReportMetric(ms(pct(r.leave, 0.99)), "leave-p99-ms")
		if r.errors > 0 {
			b.Errorf("%d of %d requests failed while DNS answers changed (first: %s)", r.errors, r.requests, r.firstErr)
		}
		if len(r.follow) < r.changes*9/10 {
			b.Errorf("traffic followed only %d of %d DNS changes to the added backend", len(r.follow), r.changes)
		}
	}
}

type churnResult struct {
	requests, errors int
	firstErr         string
	latencies        []time.Duration
	changes          int
	follow, leave    []time.Duration
}

// churnBackend is one loopback backend that notes when requests reach it.
type churnBackend struct {
	srv *httptest.Server
	// last is the UnixNano of the latest request's arrival.
	last atomic.Int64
	// since is the UnixNano of the change that added this backend, until
	// its first request after it arrives (then 0).
	since atomic.Int64
}

func runDiscoveryChurn(b *testing.B, duration time.Duration, conns int) churnResult {
	var mu sync.Mutex
	var res churnResult
	backends := make([]*churnBackend, 6)
	urls := make([]string, len(backends))
	for i := range backends {
		be := &churnBackend{}
		be.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				// The gateway's own health checks are not traffic.
				_, _ = io.WriteString(w, "ok\n")
				return
			}
			now := time.Now().UnixNano()
			be.last.Store(now)
			if s := be.since.Load(); s != 0 && now >= s && be.since.CompareAndSwap(s, 0) {
				mu.Lock()
				res.follow = append(res.follow, time.Duration(now-s))
				mu.Unlock()
			}
			_, _ = io.WriteString(w, "ok\n")
		}))
		b.Cleanup(be.srv.Close)
		backends[i], urls[i] = be, be.srv.URL
	}
	const name = "_http._tcp.jobqueue.bench.test."
	dns := testutil.StartDNS(b)
	answer := func(step int) (added, removed int) {
		i, j := step%len(urls), (step+1)%len(urls)
		lines, err := testutil.SRVLines(name, 1, urls[i], urls[j])
		if err != nil {
			b.Fatal(err)
		}
		if err := dns.Set(lines...); err != nil {
			b.Fatal(err)
		}
		return j, (step + len(urls) - 1) % len(urls)
	}
	answer(0)

	cfg := fmt.Sprintf(`routes:
  - path_prefix: /
    upstream: jobqueue
upstreams:
  jobqueue:
    balancer: round_robin
    discover: {name: %q, type: srv, interval: 1s, timeout: 500ms, resolver: %q}
    health_check: {path: /healthz, interval: 1s, timeout: 500ms, fall: 2, rise: 1}
    passive: {fail_threshold: 5, window: 10s, eject_for: 10s}
    retries: 1
    timeouts: {dial: 1s, response_header: 10s}
`, name, dns.Addr)
	file := filepath.Join(b.TempDir(), "gateway.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	// Default logging (access log on), as deployed.
	cmd := exec.Command(wardgateBin, "gateway", "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	gw := testutil.StartGateway(b, cmd, 30*time.Second)

	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
	}
	b.Cleanup(client.CloseIdleConnections)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	perWorker := make([][]time.Duration, conns)
	var errs atomic.Int64
	var firstErr atomic.Value
	for w := range conns {
		lat := make([]time.Duration, 0, 1<<16)
		wg.Go(func() {
			defer func() { perWorker[w] = lat }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				resp, err := client.Get(gw.Public + "/x")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat = append(lat, time.Since(start))
			}
		})
	}

	// changed[k] is when the change that removed backend k was made.
	changed := map[int]time.Time{}
	rng := rand.New(rand.NewPCG(15, 1))
	tick := time.NewTimer(time.Second)
	end := time.After(duration)
	b.ResetTimer()
loop:
	for step := 1; ; step++ {
		select {
		case <-end:
			break loop
		case <-tick.C:
		}
		tick.Reset(500*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second))))
		// The backend about to be added was removed four changes (2s or
		// more) ago: the last request it got since then ends that
		// removal's window.
		next := (step + 1) % len(urls)
		if t0, ok := changed[next]; ok {
			last := time.Unix(0, backends[next].last.Load())
			res.leave = append(res.leave, max(0, last.Sub(t0)))
			delete(changed, next)
		}
		now := time.Now()
		backends[next].since.Store(now.UnixNano())
		_, removed := answer(step)
		changed[removed] = now
		res.changes++
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	b.StopTimer()
	_ = testutil.Terminate(cmd.Process, gw.Exited, 15*time.Second)

	for _, l := range perWorker {
		res.latencies = append(res.latencies, l...)
	}
	res.errors = int(errs.Load())
	res.requests = len(res.latencies) + res.errors
	if e, ok := firstErr.Load().(string); ok {
		res.firstErr = e
	}
	mu.Lock() // the backends may still be answering a health check
	defer mu.Unlock()
	res.follow = slices.Clone(res.follow)
	return res
}

// pct is the p-quantile of ds (nearest rank), 0 for none.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// envDuration reads a duration from the environment, def when unset.
func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration such as 30s", name, v)
	}
	return d
}
