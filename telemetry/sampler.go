package telemetry

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// samplerFromEnv builds the sampler named by OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (the SDK's own values and defaults), wrapped so a
// root span that starts with a link to a sampled span is sampled too.
//
// The SDK would read these variables itself, but it offers no way to wrap
// the sampler it builds, so the handful of standard names is parsed here.
// The wrap matters for batches: the job queue's CONSUMER span is a root
// linked to the PRODUCER span of every request it carries; under
// parentbased_traceidratio it would otherwise be kept only at the ratio, and
// the link from a sampled request would usually lead nowhere (see
// NewLinkSampler).
func samplerFromEnv() (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := 1.0
	if strings.HasSuffix(name, "traceidratio") && arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		ratio = r
	}
	var base sdktrace.Sampler
	switch name {
	case "", "parentbased_always_on":
		base = sdktrace.ParentBased(sdktrace.AlwaysSample())
	case "always_on":
		base = sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample(), nil // nothing at all, batches included
	case "traceidratio":
		base = sdktrace.TraceIDRatioBased(ratio)
	case "parentbased_always_off":
		base = sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		base = sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	default:
		return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
	}
	return NewLinkSampler(base), nil
}

// NewLinkSampler returns a sampler that samples a root span when it is a
// CONSUMER span (a batch) or when any of the links it starts with is
// sampled, and defers to base otherwise.
//
// Batches are kept whatever the ratio: a batch span starts before the
// batch knows which requests it will carry, so a decision by its links
// could only see the first one, and under a 1 % ratio the batch of almost
// every sampled request would be dropped, its link leading nowhere. A batch
// is one span per thousands of requests, so keeping all of them costs
// little. Use sdktrace.NeverSample, not this, to trace nothing at all.
func NewLinkSampler(base sdktrace.Sampler) sdktrace.Sampler { return linkSampler{base} }

type linkSampler struct{ base sdktrace.Sampler }

func (s linkSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if !trace.SpanContextFromContext(p.ParentContext).IsValid() {
		sample := p.Kind == trace.SpanKindConsumer
		for _, l := range p.Links {
			sample = sample || l.SpanContext.IsSampled()
		}
		if sample {
			return sdktrace.SamplingResult{
				Decision:   sdktrace.RecordAndSample,
				Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState(),
			}
		}
	}
	return s.base.ShouldSample(p)
}

func (s linkSampler) Description() string {
	return "LinkSampled{" + s.base.Description() + "}"
}
