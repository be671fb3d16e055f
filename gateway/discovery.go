package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/wardgate/wardgate/gateway/balancer"
)

// Discovery: an upstream with `discover:` gets its targets from DNS. One
// loop per such upstream (started with the table's health checks, so it
// stops on reload and on Close) re-resolves the name and, when the address
// set changed, swaps the upstream's targetSet atomically. Targets whose
// URL and weight are unchanged are the same *target objects in the new set,
// so health, passive failures, in-flight counts and EWMA carry over; a
// removed target gets no new requests, and requests already on it finish
// (they hold the *target, not the set). A failed lookup or an empty answer
// (unless allow_empty) keeps the last good set, is logged through the
// rate-limited request logger and counted in wardgate.discovery.errors.

// Reasons of wardgate.discovery.errors.
const (
	reasonTimeout  = "timeout"
	reasonEmpty    = "empty"
	reasonNetwork  = "network"
	reasonResolver = "no_resolver"
	// Other reasons are the DNS response code, lower case: servfail,
	// nxdomain, refused, ...
)

// discoveredHostsHint sizes a discovered upstream's idle-connection pool
// (MaxIdleConns), whose host count is not known when the transport is built.
const discoveredHostsHint = 16

// discoveryReasons start at 0 for every discovered upstream.
var discoveryReasons = []string{reasonTimeout, reasonEmpty, reasonNetwork, "servfail", "nxdomain", "refused"}

// discoveryError is a failed resolution with the reason its metric carries.
type discoveryError struct {
	reason string
	err    error
}

func (e *discoveryError) Error() string { return e.err.Error() }
func (e *discoveryError) Unwrap() error { return e.err }

// endpoint is one resolved target.
type endpoint struct {
	url    string
	weight int
}

// resolver resolves one Discover config with miekg/dns, speaking to the
// configured server directly (not through the Go or libc resolver) so
// TTLs, SRV weights and response codes are visible.
type resolver struct {
	d      *Discover
	server string
}

func newResolver(d *Discover) (*resolver, error) {
	server := d.Resolver
	if server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, &discoveryError{reasonResolver, fmt.Errorf("%w: %w", errNoResolver, err)}
		}
		if len(cc.Servers) == 0 {
			return nil, &discoveryError{reasonResolver, errNoResolver}
		}
		server = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	return &resolver{d: d, server: server}, nil
}

// resolve returns the endpoints (sorted by URL) and the smallest TTL of
// the records used; an empty answer is an error unless allow_empty.
func (r *resolver) resolve(ctx context.Context) ([]endpoint, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.d.Timeout.D)
	defer cancel()
	name := dns.Fqdn(r.d.Name)
	var eps []endpoint
	ttl := time.Duration(-1)
	minTTL := func(s uint32) {
		if d := time.Duration(s) * time.Second; ttl < 0 || d < ttl {
			ttl = d
		}
	}
	switch r.d.Type {
	case discoverSRV:
		msg, err := r.query(ctx, name, dns.TypeSRV)
		if err != nil {
			return nil, 0, err
		}
		var srvs []*dns.SRV
		for _, rr := range msg.Answer {
			if s, ok := rr.(*dns.SRV); ok {
				srvs = append(srvs, s)
			}
		}
		// RFC 2782: only the lowest priority is used while it answers.
		if len(srvs) > 0 {
			lowest := slices.MinFunc(srvs, func(a, b *dns.SRV) int { return cmp.Compare(a.Priority, b.Priority) }).Priority
			srvs = slices.DeleteFunc(srvs, func(s *dns.SRV) bool { return s.Priority != lowest })
		}
		for _, s := range srvs {
			if s.Target == "." {
				continue // RFC 2782: "the service is decidedly not available"
			}
			minTTL(s.Hdr.Ttl)
			ips := addrsIn(msg.Extra, s.Target, minTTL)
			if len(ips) == 0 {
				if ips, err = r.addrs(ctx, s.Target, minTTL); err != nil {
					return nil, 0, err
				}
			}
			for _, ip := range ips {
				eps = append(eps, endpoint{url: r.url(ip, int(s.Port)), weight: max(int(s.Weight), 1)})
			}
		}
	default:
		ips, err := r.addrs(ctx, name, minTTL)
		if err != nil {
			return nil, 0, err
		}
		for _, ip := range ips {
			eps = append(eps, endpoint{url: r.url(ip, r.d.Port), weight: 1})
		}
	}
	slices.SortFunc(eps, func(a, b endpoint) int { return cmp.Compare(a.url, b.url) })
	eps = slices.CompactFunc(eps, func(a, b endpoint) bool { return a.url == b.url })
	if len(eps) == 0 && !r.d.AllowEmpty {
		return nil, 0, &discoveryError{reasonEmpty, fmt.Errorf("%s %s: no records", strings.ToUpper(r.d.Type), name)}
	}
	return eps, ttl, nil
}

func (r *resolver) url(ip net.IP, port int) string {
	return r.d.Scheme + "://" + net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// addrs returns the A and AAAA addresses of name.
func (r *resolver) addrs(ctx context.Context, name string, ttl func(uint32)) ([]net.IP, error) {
	var ips []net.IP
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		msg, err := r.query(ctx, name, qt)
		if err != nil {
			return nil, err
		}
		ips = append(ips, addrsIn(msg.Answer, canonicalName(msg.Answer, name), ttl)...)
	}
	return ips, nil
}

// canonicalName follows the CNAME chain of name in rrs (a recursive
// resolver answers "name CNAME other" plus the records of other), bounded
// so a CNAME loop ends.
func canonicalName(rrs []dns.RR, name string) string {
	for range 8 {
		next := ""
		for _, rr := range rrs {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
				next = c.Target
				break
			}
		}
		if next == "" {
			return name
		}
		name = next
	}
	return name
}

// addrsIn returns the A and AAAA records of name in rrs.
func addrsIn(rrs []dns.RR, name string, ttl func(uint32)) []net.IP {
	var ips []net.IP
	for _, rr := range rrs {
		if !strings.EqualFold(rr.Header().Name, name) {
			continue
		}
		switch a := rr.(type) {
		case *dns.A:
			ips = append(ips, a.A)
			ttl(a.Hdr.Ttl)
		case *dns.AAAA:
			ips = append(ips, a.AAAA)
			ttl(a.Hdr.Ttl)
		}
	}
	return ips
}

// query sends one question over UDP, again over TCP when truncated. Any
// response code other than NOERROR is an error (NXDOMAIN included: a name
// that vanished is a failure to keep the last good set through, not an
// empty pool).
func (r *resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp", Timeout: r.d.Timeout.D}
	in, _, err := c.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		reason := reasonNetwork
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			reason = reasonTimeout
		}
		return nil, &discoveryError{reason, fmt.Errorf("%s %s via %s: %w", dns.TypeToString[qtype], name, r.server, err)}
	}
	if in.Rcode != dns.RcodeSuccess {
		rc := strings.ToLower(dns.RcodeToString[in.Rcode])
		if rc == "" {
			rc = "rcode_" + strconv.Itoa(in.Rcode)
		}
		return nil, &discoveryError{rc, fmt.Errorf("%s %s via %s: %s", dns.TypeToString[qtype], name, r.server, strings.ToUpper(rc))}
	}
	return in, nil
}

// errorReason is the wardgate.discovery.errors reason of err.
func errorReason(err error) string {
	var de *discoveryError
	if errors.As(err, &de) {
		return de.reason
	}
	return reasonNetwork
}

// buildSet turns endpoints into a target set for up, reusing the targets
// of prev (by URL) so their state carries over; a target whose weight
// changed is rebuilt with its state copied (see balancer.Target.Reweighted).
func (up *upstream) buildSet(eps []endpoint, prev *targetSet) (*targetSet, error) {
	old := map[string]*target{}
	if prev != nil {
		for _, t := range prev.targets {
			old[t.String()] = t
		}
	}
	targets := make([]*target, 0, len(eps))
	for _, ep := range eps {
		t := old[ep.url]
		if t != nil && t.Weight != ep.weight {
			t = t.reweighted(ep.weight)
		}
		if t == nil {
			u, err := parseTargetURL(ep.url)
			if err != nil {
				return nil, fmt.Errorf("upstreams.%s: discovered %w", up.name, err)
			}
			t = newTarget(balancer.NewTarget(u, ep.weight), up.name)
		}
		targets = append(targets, t)
	}
	return up.newSet(targets)
}

// sameSet reports whether eps are exactly the targets of s.
func sameSet(s *targetSet, eps []endpoint) bool {
	if s == nil || len(s.targets) != len(eps) {
		return false
	}
	have := make(map[endpoint]bool, len(eps))
	for _, t := range s.targets {
		have[endpoint{t.String(), t.Weight}] = true
	}
	for _, ep := range eps {
		if !have[ep] {
			return false
		}
	}
	return true
}

// discoverLoop re-resolves up's name until ctx ends, swapping in each new
// target set, and runs the active health checks of its targets (a probe
// loop per target, started when it appears and stopped when it goes).
func (g *Gateway) discoverLoop(ctx context.Context, up *upstream, hc *healthCheckers) {
	d := up.cfg.Discover
	checks := map[*target]context.CancelFunc{}
	syncChecks := func() {
		if up.cfg.HealthCheck.Path == "" {
			return
		}
		cur := map[*target]bool{}
		for _, t := range up.set.Load().targets {
			cur[t] = true
			if checks[t] == nil {
				cctx, cancel := context.WithCancel(ctx)
				checks[t] = cancel
				hc.wg.Go(func() { g.checkLoop(cctx, up, t) })
			}
		}
		for t, cancel := range checks {
			if !cur[t] {
				cancel()
				delete(checks, t)
			}
		}
	}
	syncChecks()
	res, rerr := newResolver(d)
	wait := time.Duration(0)
	if s := up.set.Load(); s.resolved {
		wait = s.next // build resolved already (or the old table had)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		next := d.Interval.D
		var eps []endpoint
		var ttl time.Duration
		err := rerr
		if err == nil {
			eps, ttl, err = res.resolve(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			g.discoveryFailed(ctx, up, err)
		} else {
			up.resolvedAt.Store(time.Now().UnixNano())
			next = nextWait(d, ttl)
			if err := g.applyDiscovered(ctx, up, eps, next); err != nil {
				g.discoveryFailed(ctx, up, err)
			}
			syncChecks()
		}
		timer.Reset(next)
	}
}

// nextWait is the time until the next resolution after an answer whose
// smallest TTL is ttl (-1: no records): interval, or the TTL when shorter,
// floored at minDiscoverInterval (but never above interval) so a TTL of 0
// does not become a query loop.
func nextWait(d *Discover, ttl time.Duration) time.Duration {
	next := d.Interval.D
	if ttl >= 0 && ttl < next {
		next = max(ttl, min(minDiscoverInterval, next))
	}
	return next
}

// applyDiscovered swaps in the target set of eps when it differs from the
// current one.
func (g *Gateway) applyDiscovered(ctx context.Context, up *upstream, eps []endpoint, next time.Duration) error {
	cur := up.set.Load()
	if sameSet(cur, eps) {
		return nil
	}
	s, err := up.buildSet(eps, cur)
	if err != nil {
		return err
	}
	s.resolved, s.next = true, next
	up.set.Store(s)
	g.logger.LogAttrs(ctx, slog.LevelInfo, "dns discovery: targets changed",
		slog.String("upstream", up.name), slog.String("name", up.cfg.Discover.Name),
		slog.Int("targets", len(s.targets)), slog.Int("before", len(cur.targets)))
	return nil
}

func (g *Gateway) discoveryFailed(ctx context.Context, up *upstream, err error) {
	reason := errorReason(err)
	kept := 0
	if s := up.set.Load(); s != nil { // nil during the first resolution
		kept = len(s.targets)
	}
	g.m.discoveryErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("upstream", up.name), attribute.String("reason", reason)))
	g.reqLog.LogAttrs(ctx, slog.LevelWarn, "dns discovery failed, keeping the last good targets",
		slog.String("upstream", up.name), slog.String("reason", reason),
		slog.Int("targets", kept), slog.String("error", err.Error()))
}

// initialDiscovered returns the first target set of a discovered upstream
// of a new table: the previous table's set when the discover: block is
// unchanged (a reload keeps the targets and their state), else a first
// resolution now, so a fresh gateway serves at once. When that fails the
// set is the previous table's targets of the upstream if it had any, else
// empty (503s), and the loop retries every interval.
func (g *Gateway) initialDiscovered(up *upstream, old *table) (*targetSet, error) {
	if old != nil {
		if ou := old.upstreams[up.name]; ou != nil && ou.cfg.Discover != nil && *ou.cfg.Discover == *up.cfg.Discover {
			prev := ou.set.Load()
			s, err := up.newSet(prev.targets)
			if err != nil {
				return nil, err
			}
			up.resolvedAt.Store(ou.resolvedAt.Load())
			s.resolved, s.next = prev.resolved, prev.next
			return s, nil
		}
	}
	var eps []endpoint
	var ttl time.Duration
	res, err := newResolver(up.cfg.Discover)
	if err == nil {
		eps, ttl, err = res.resolve(g.ctx)
	}
	if err != nil {
		g.discoveryFailed(g.ctx, up, err)
		// A reload that changed discover: while DNS fails keeps the
		// upstream's last good targets rather than emptying the pool; the
		// loop resolves again at once (resolved is false).
		if old != nil {
			if ou := old.upstreams[up.name]; ou != nil {
				up.resolvedAt.Store(ou.resolvedAt.Load())
				return up.newSet(ou.set.Load().targets)
			}
		}
		return up.newSet(nil)
	}
	up.resolvedAt.Store(time.Now().UnixNano())
	s, err := up.buildSet(eps, nil)
	if err != nil {
		return nil, err
	}
	s.resolved, s.next = true, nextWait(up.cfg.Discover, ttl)
	return s, nil
}

// reweighted is t with a new weight and t's state (health, passive
// failures and ejection, counters, EWMA); see balancer.Target.Reweighted.
func (t *target) reweighted(w int) *target {
	n := newTarget(t.Target.Reweighted(w), t.upstream)
	t.mu.Lock()
	n.fails = append([]time.Time(nil), t.fails...)
	t.mu.Unlock()
	n.ejections.Store(t.ejections.Load())
	return n // the ejection deadline is copied by balancer.Target.Reweighted
}
