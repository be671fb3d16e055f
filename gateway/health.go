package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Health has two halves, as in nginx and Envoy:
//
//   - Active checks probe every target with GET health_check.path each
//     interval. `fall` consecutive failures (error, timeout, or a status
//     outside 2xx/3xx) mark the target down; `rise` consecutive successes
//     mark it up again. Targets start healthy so a fresh gateway serves at
//     once; a dead target is found within fall*interval.
//   - Passive ejection watches live traffic: fail_threshold failures
//     (transport errors, or an upstream 502/504) within `window` eject the
//     target for `eject_for`. 4xx, 503 (a backend shedding load on purpose,
//     e.g. the job queue when full) and client disconnects (499) do not
//     count: they say nothing about the target's health.

// healthCheckers runs the active checks of one routing table.
type healthCheckers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startHealthChecks starts one probe loop per target of every upstream
// that has a health_check.path, and the DNS discovery loop of every
// discovered upstream (which runs its targets' probes itself, as they come
// and go). stop ends them all.
func (g *Gateway) startHealthChecks(ctx context.Context, ups map[string]*upstream) *healthCheckers {
	ctx, cancel := context.WithCancel(ctx)
	hc := &healthCheckers{cancel: cancel}
	for _, up := range ups {
		if up.cfg.Discover != nil {
			hc.wg.Go(func() { g.discoverLoop(ctx, up, hc) })
			continue
		}
		if up.cfg.HealthCheck.Path == "" {
			continue
		}
		for _, t := range up.set.Load().targets {
			hc.wg.Go(func() { g.checkLoop(ctx, up, t) })
		}
	}
	return hc
}

// stop ends the probe loops and waits for them.
func (h *healthCheckers) stop() {
	h.cancel()
	h.wg.Wait()
}

func (g *Gateway) checkLoop(ctx context.Context, up *upstream, t *target) {
	hc := up.cfg.HealthCheck
	probeURL := *t.URL
	probeURL.Path = strings.TrimSuffix(t.URL.Path, "/") + hc.Path
	probeURL.RawPath = ""
	client := &http.Client{
		Transport:     up.transport,
		Timeout:       hc.Timeout.D,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tick := time.NewTicker(hc.Interval.D)
	defer tick.Stop()
	okStreak, failStreak := 0, 0
	for {
		err := probe(ctx, client, probeURL.String())
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okStreak, failStreak = okStreak+1, 0
			if !t.Healthy() && okStreak >= hc.Rise {
				t.SetHealthy(true)
				g.logger.LogAttrs(ctx, slog.LevelInfo, "target is healthy again",
					slog.String("upstream", up.name), slog.String("target", t.String()), slog.Int("rise", hc.Rise))
			}
		} else {
			okStreak, failStreak = 0, failStreak+1
			if t.Healthy() && failStreak >= hc.Fall {
				t.SetHealthy(false)
				g.logger.LogAttrs(ctx, slog.LevelWarn, "target marked down by health check",
					slog.String("upstream", up.name), slog.String("target", t.String()),
					slog.Int("fall", hc.Fall), slog.String("error", err.Error()))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe performs one health check request.
func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "wardgate-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused; health bodies are small.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("health check %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// recordFailure notes a failed attempt at now and ejects the target when
// the passive threshold is reached within the window. It reports whether
// this failure ejected the target.
func (t *target) recordFailure(now time.Time, p Passive) bool {
	threshold := *p.FailThreshold
	if threshold == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cutoff := now.Add(-p.Window.D)
	i := 0
	for i < len(t.fails) && !t.fails[i].After(cutoff) {
		i++
	}
	t.fails = append(t.fails[:0], t.fails[i:]...)
	t.fails = append(t.fails, now)
	if len(t.fails) < threshold {
		return false
	}
	t.fails = t.fails[:0]
	until := now.Add(p.EjectFor.D)
	t.Eject(until)
	t.ejections.Add(1)
	return true
}
