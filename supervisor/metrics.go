package supervisor

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// scopeName is the instrumentation scope of the supervisor's metrics
// (otel_scope_name on every series).
const scopeName = "github.com/wardgate/wardgate/supervisor"

// Restart reasons: why the process that was restarted died.
const (
	ReasonExit     = "exit"     // it exited on its own (any status)
	ReasonSignal   = "signal"   // a signal killed it without a crash (kill -9, OOM killer)
	ReasonCrash    = "crash"    // it crashed: core dumped or crash output written
	ReasonWatchdog = "watchdog" // the watchdog killed it, stuck in its crash path
)

// Post-mortem results.
const (
	ResultAnalyzed      = "analyzed"       // Analyze wrote the report
	ResultAnalyzeFailed = "analyze_failed" // there is a core but no report (Analyze failed, or the executable was lost)
	ResultNoCore        = "no_core"        // crash output only: nothing to analyze
	ResultNotAnalyzed   = "not_analyzed"   // a core, but Options.Analyze is nil
)

var (
	restartReasons    = []string{ReasonExit, ReasonSignal, ReasonCrash, ReasonWatchdog}
	postmortemResults = []string{ResultAnalyzed, ResultAnalyzeFailed, ResultNoCore}
)

// instruments are the supervisor's metrics. Counters of a service start at
// 0 when it is first supervised, so a dashboard shows 0 rather than "No
// data" until something happens.
type instruments struct {
	restarts    metric.Int64Counter
	postmortems metric.Int64Counter
	analyzeDur  metric.Float64Histogram
	captures    metric.Int64Counter
}

func newInstruments(mp metric.MeterProvider, s *Supervisor) (instruments, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(scopeName)
	var in instruments
	var err error
	wrap := func(name string, err error) error { return fmt.Errorf("supervisor: metric %s: %w", name, err) }
	if in.restarts, err = m.Int64Counter("wardgate.child.restarts", metric.WithUnit("{restart}"),
		metric.WithDescription("Restarts of a supervised child, by service and why the previous process died (exit, signal, crash, watchdog).")); err != nil {
		return in, wrap("wardgate.child.restarts", err)
	}
	if in.postmortems, err = m.Int64Counter("wardgate.postmortems", metric.WithUnit("{postmortem}"),
		metric.WithDescription("Post-mortem directories written under DATA/postmortem/, by service and result (analyzed, analyze_failed, no_core).")); err != nil {
		return in, wrap("wardgate.postmortems", err)
	}
	if in.analyzeDur, err = m.Float64Histogram("wardgate.postmortem.analyze.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to analyze one post-mortem core (delve report), failed analyses included."),
		metric.WithExplicitBucketBoundaries(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)); err != nil {
		return in, wrap("wardgate.postmortem.analyze.duration", err)
	}
	if in.captures, err = m.Int64Counter("wardgate.watchdog.captures", metric.WithUnit("{capture}"),
		metric.WithDescription("Children found stuck in their crash path, captured live and killed by the watchdog.")); err != nil {
		return in, wrap("wardgate.watchdog.captures", err)
	}
	up, err := m.Int64ObservableGauge("wardgate.child.up",
		metric.WithDescription("1 while the child's process runs and has passed its readiness check, 0 while it is down or restarting."))
	if err != nil {
		return in, wrap("wardgate.child.up", err)
	}
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, st := range s.upStates() {
			v := int64(0)
			if st.up {
				v = 1
			}
			o.ObserveInt64(up, v, metric.WithAttributes(attribute.String("service", st.name)))
		}
		return nil
	}, up); err != nil {
		return in, wrap("wardgate.child.up", err)
	}
	return in, nil
}

// known starts every counter of service at 0.
func (in instruments) known(service string) {
	ctx := context.Background()
	svc := attribute.String("service", service)
	for _, r := range restartReasons {
		in.restarts.Add(ctx, 0, metric.WithAttributes(svc, attribute.String("reason", r)))
	}
	for _, r := range postmortemResults {
		in.postmortems.Add(ctx, 0, metric.WithAttributes(svc, attribute.String("result", r)))
	}
	in.captures.Add(ctx, 0, metric.WithAttributes(svc))
}

func (in instruments) restarted(service, reason string) {
	in.restarts.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("service", service), attribute.String("reason", reason)))
}

func (in instruments) postmortem(service, result string) {
	in.postmortems.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("service", service), attribute.String("result", result)))
}

func (in instruments) analyzed(service string, seconds float64) {
	in.analyzeDur.Record(context.Background(), seconds, metric.WithAttributes(attribute.String("service", service)))
}

func (in instruments) captured(service string) {
	in.captures.Add(context.Background(), 1, metric.WithAttributes(attribute.String("service", service)))
}

type upState struct {
	name string
	up   bool
}

// upStates reads, for the child.up gauge, whether each child is up.
func (s *Supervisor) upStates() []upState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]upState, 0, len(s.order))
	for _, n := range s.order {
		c := s.children[n]
		c.mu.Lock()
		out = append(out, upState{name: n, up: c.cur != nil && c.cur.ready})
		c.mu.Unlock()
	}
	return out
}
