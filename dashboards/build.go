// Package dashboards builds wardgate's Grafana dashboards as code with the
// Grafana Foundation SDK and renders them to the JSON files checked in next
// to this file (gateway.json, jobqueue.json, go-runtime.json,
// diagnostics.json). Grafana provisions those files (deploy/grafana/), and
// they can be imported by hand.
//
// Every query uses the Prometheus names that the OTel Prometheus exporter in
// telemetry/ really serves (read from the /metrics of `wardgate up`, not
// guessed), every rate is taken over $__rate_interval, and the datasource,
// job and instance are template variables. Regenerate after a change:
//
//	go generate ./dashboards
//
// The package test fails when the checked-in JSON differs from what this
// code builds, and an end-to-end test runs every panel query against a real
// Prometheus that scrapes `wardgate up` under load.
package dashboards

//go:generate go run ./gen

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// File is one rendered dashboard.
type File struct {
	Name string // file name, e.g. "gateway.json"
	JSON []byte // indented JSON with a trailing newline
}

// All builds every dashboard. The result is deterministic: the same code
// always renders the same bytes.
func All() ([]File, error) {
	boards := []struct {
		name  string
		build func() *dashboard.DashboardBuilder
	}{
		{"gateway.json", gatewayBoard},
		{"jobqueue.json", jobqueueBoard},
		{"go-runtime.json", runtimeBoard},
		{"diagnostics.json", diagnosticsBoard},
	}
	files := make([]File, 0, len(boards))
	for _, b := range boards {
		d, err := b.build().Build()
		if err != nil {
			return nil, fmt.Errorf("dashboards: build %s: %w", b.name, err)
		}
		data, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("dashboards: marshal %s: %w", b.name, err)
		}
		files = append(files, File{Name: b.name, JSON: append(data, '\n')})
	}
	return files, nil
}

// ds is the datasource every panel and variable uses: the value of the
// ${datasource} variable, so the boards work with any Prometheus a user
// has, not only the provisioned one.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// sel is the label selector every query starts from.
const sel = `job=~"$job",instance=~"$instance"`

// jaegerDefault is where compose publishes the Jaeger UI.
const jaegerDefault = "http://localhost:16686"

// newBoard returns a dashboard with the common settings and variables:
// datasource, job (defaulting to defJob, or All when empty), instance, and
// the Jaeger UI address used by the trace links.
func newBoard(uid, title, desc, defJob string) *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(desc).
		Tags([]string{"wardgate"}).
		Editable().
		Refresh("10s").
		Time("now-30m", "now").
		Timezone("browser").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("wardgate dashboards").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"wardgate"}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true))

	b.WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus"))

	jobCurrent := dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: cog.ToPtr("All")}, Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")}}
	if defJob != "" {
		jobCurrent = dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: cog.ToPtr(defJob)}, Value: dashboard.StringOrArrayOfString{String: cog.ToPtr(defJob)}}
	}
	b.WithVariable(dashboard.NewQueryVariableBuilder("job").
		Label("Job").
		Datasource(ds).
		Query(dashboard.StringOrMap{String: cog.ToPtr(`label_values(up, job)`)}).
		Definition(`label_values(up, job)`).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".+").
		Current(jobCurrent))

	b.WithVariable(dashboard.NewQueryVariableBuilder("instance").
		Label("Instance").
		Datasource(ds).
		Query(dashboard.StringOrMap{String: cog.ToPtr(`label_values(up{job=~"$job"}, instance)`)}).
		Definition(`label_values(up{job=~"$job"}, instance)`).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".+").
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: cog.ToPtr("All")}, Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")}}))

	b.WithVariable(dashboard.NewTextBoxVariableBuilder("jaeger_url").
		Label("Jaeger UI").
		Description("Base URL of the Jaeger UI, used by the trace links of the latency panels.").
		DefaultValue(dashboard.StringOrMap{String: cog.ToPtr(jaegerDefault)}).
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: cog.ToPtr(jaegerDefault)}, Value: dashboard.StringOrArrayOfString{String: cog.ToPtr(jaegerDefault)}}).
		Options([]dashboard.VariableOption{{Text: dashboard.StringOrArrayOfString{String: cog.ToPtr(jaegerDefault)}, Value: dashboard.StringOrArrayOfString{String: cog.ToPtr(jaegerDefault)}}}))
	return b
}

// q is one panel query: a PromQL expression and its legend.
type q struct{ expr, legend string }

type kind int

const (
	timeSeries kind = iota
	statPanel
	stateTimeline
)

// panel describes one panel; build turns it into an SDK builder so the
// boards read as a list of what an SRE sees rather than builder chains.
type panel struct {
	kind    kind
	title   string
	desc    string
	unit    string
	w, h    uint32
	queries []q
	// traces enables exemplars on every query and adds a data link to
	// the Jaeger search of service in the panel's time range: latency
	// panels are where an SRE jumps from a slow bucket to its trace.
	traces  string
	min0    bool
	max     *float64
	stacked bool
	mapping map[string]string // value -> text, for state panels
}

func (p panel) targets() []cog.Builder[variants.Dataquery] {
	ts := make([]cog.Builder[variants.Dataquery], 0, len(p.queries))
	for i, qq := range p.queries {
		t := prometheus.NewDataqueryBuilder().
			Expr(qq.expr).
			LegendFormat(qq.legend).
			RefId(string(rune('A' + i))).
			Datasource(ds).
			Range()
		if p.traces != "" {
			t.Exemplar(true)
		}
		ts = append(ts, t)
	}
	return ts
}

func (p panel) links() []cog.Builder[dashboard.DashboardLink] {
	if p.traces == "" {
		return nil
	}
	// Jaeger takes microseconds; ${__from} and ${__to} are milliseconds.
	url := "${jaeger_url}/search?service=" + p.traces + "&start=${__from}000&end=${__to}000&limit=50"
	return []cog.Builder[dashboard.DashboardLink]{
		dashboard.NewDashboardLinkBuilder("Traces of " + p.traces + " in Jaeger (this time range)").
			Type(dashboard.DashboardLinkTypeLink).
			Url(url).
			TargetBlank(true),
	}
}

func (p panel) mappings() []dashboard.ValueMapping {
	if len(p.mapping) == 0 {
		return nil
	}
	vm := dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: map[string]dashboard.ValueMappingResult{}}
	colors := map[string]string{"0": "red", "1": "green"}
	for v, text := range p.mapping {
		r := dashboard.ValueMappingResult{Text: cog.ToPtr(text)}
		if c, ok := colors[v]; ok {
			r.Color = cog.ToPtr(c)
		}
		vm.Options[v] = r
	}
	return []dashboard.ValueMapping{{ValueMap: &vm}}
}

func (p panel) build(id uint32) cog.Builder[dashboard.Panel] {
	w, h := p.w, p.h
	if w == 0 {
		w = 12
	}
	if h == 0 {
		h = 8
	}
	switch p.kind {
	case statPanel:
		b := stat.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Unit(p.unit).
			Datasource(ds).Span(w).Height(h).Targets(p.targets()).
			GraphMode(common.BigValueGraphModeArea).
			ColorMode(common.BigValueColorModeValue).
			Orientation(common.VizOrientationAuto).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
		if m := p.mappings(); m != nil {
			b.Mappings(m)
		}
		return b
	case stateTimeline:
		b := statetimeline.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Unit(p.unit).
			Datasource(ds).Span(w).Height(h).Targets(p.targets())
		if m := p.mappings(); m != nil {
			b.Mappings(m)
		}
		return b
	}
	b := timeseries.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Unit(p.unit).
		Datasource(ds).Span(w).Height(h).Targets(p.targets()).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	if p.min0 {
		b.Min(0)
	}
	if p.max != nil {
		b.Max(*p.max)
	}
	if p.stacked {
		b.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
	}
	if l := p.links(); l != nil {
		b.DataLinks(l)
	}
	return b
}

// section is a row of panels.
type section struct {
	title  string
	panels []panel
}

// addSections lays the rows and panels out in order, numbering panels
// from 1 so ids are stable across regenerations.
func addSections(b *dashboard.DashboardBuilder, sections []section) *dashboard.DashboardBuilder {
	id := uint32(1)
	for _, s := range sections {
		b.WithRow(dashboard.NewRowBuilder(s.title).Id(id))
		id++
		for _, p := range s.panels {
			b.WithPanel(p.build(id))
			id++
		}
	}
	return b
}

// rate is rate(metric{sel}[$__rate_interval]); extra adds label matchers.
func rate(metric, extra string) string {
	return fmt.Sprintf("rate(%s{%s%s}[$__rate_interval])", metric, sel, comma(extra))
}

// quantile is histogram_quantile over the _bucket series of a histogram,
// aggregated by le and the given labels.
func quantile(phi, hist, by, extra string) string {
	labels := "le"
	if by != "" {
		labels += ", " + by
	}
	return fmt.Sprintf("histogram_quantile(%s, sum by (%s) (%s))", phi, labels, rate(hist+"_bucket", extra))
}

// gauge is metric{sel}.
func gauge(metric, extra string) string {
	return fmt.Sprintf("%s{%s%s}", metric, sel, comma(extra))
}

func comma(extra string) string {
	if extra == "" {
		return ""
	}
	return "," + extra
}

func ptr[T any](v T) *T { return &v }
