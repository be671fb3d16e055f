package supervisor

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// meters is a real OTel SDK meter provider with a manual reader, so tests
// read exactly what an exporter would get.
type meters struct {
	t  *testing.T
	rd *sdkmetric.ManualReader
	mp *sdkmetric.MeterProvider
}

func newMeters(t *testing.T) *meters {
	rd := sdkmetric.NewManualReader()
	return &meters{t: t, rd: rd, mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(rd))}
}

// value returns the value of metric name for the series whose attributes
// are exactly attrs (for a histogram: its count), and whether it exists.
func (m *meters) value(name string, attrs ...attribute.KeyValue) (float64, bool) {
	m.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.rd.Collect(context.Background(), &rm); err != nil {
		m.t.Fatal(err)
	}
	want := attribute.NewSet(attrs...)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != scopeName {
			continue
		}
		for _, mt := range sm.Metrics {
			if mt.Name != name {
				continue
			}
			switch d := mt.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if p.Attributes.Equals(&want) {
						return float64(p.Value), true
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if p.Attributes.Equals(&want) {
						return float64(p.Value), true
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if p.Attributes.Equals(&want) {
						return float64(p.Count), true
					}
				}
			default:
				m.t.Fatalf("%s: unexpected data type %T", name, mt.Data)
			}
		}
	}
	return 0, false
}

// expect fails unless metric name has value want for attrs.
func (m *meters) expect(want float64, name string, attrs ...attribute.KeyValue) {
	m.t.Helper()
	got, ok := m.value(name, attrs...)
	if !ok {
		m.t.Fatalf("%s%v: no series", name, attrs)
	}
	if got != want {
		m.t.Fatalf("%s%v = %v, want %v", name, attrs, got, want)
	}
}

func svc(name string) attribute.KeyValue { return attribute.String("service", name) }
func reason(r string) attribute.KeyValue { return attribute.String("reason", r) }
func result(r string) attribute.KeyValue { return attribute.String("result", r) }
