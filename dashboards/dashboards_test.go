package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// board is the part of a dashboard JSON the tests read. It is decoded from
// the checked-in files, the same bytes Grafana gets.
type board struct {
	UID        string     `json:"uid"`
	Title      string     `json:"title"`
	Panels     []jsonPane `json:"panels"`
	Templating struct {
		List []struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Query      json.RawMessage `json:"query"`
			Datasource *struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			AllValue string `json:"allValue"`
			Current  struct {
				Value string `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type jsonPane struct {
	Type       string `json:"type"`
	ID         int    `json:"id"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Exemplar   bool   `json:"exemplar"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit  string `json:"unit"`
			Links []struct {
				URL string `json:"url"`
			} `json:"links"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels []jsonPane `json:"panels"` // collapsed rows
}

// loadBoards reads every checked-in dashboard.
func loadBoards(t testing.TB) map[string]board {
	t.Helper()
	files, err := All()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]board{}
	for _, f := range files {
		data, err := os.ReadFile(f.Name)
		if err != nil {
			t.Fatalf("%s: %v (run go generate ./dashboards)", f.Name, err)
		}
		var b board
		if err := json.Unmarshal(data, &b); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		out[f.Name] = b
	}
	return out
}

// panels flattens rows: every panel that shows data.
func (b board) panels() []jsonPane {
	var out []jsonPane
	var walk func([]jsonPane)
	walk = func(ps []jsonPane) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(b.Panels)
	return out
}

func TestCheckedInDashboardsAreGenerated(t *testing.T) {
	files, err := All()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"gateway.json": true, "jobqueue.json": true, "go-runtime.json": true, "diagnostics.json": true}
	for _, f := range files {
		delete(want, f.Name)
		got, err := os.ReadFile(f.Name)
		if err != nil {
			t.Errorf("%s: %v; run go generate ./dashboards", f.Name, err)
			continue
		}
		if !bytes.Equal(got, f.JSON) {
			t.Errorf("%s differs from what dashboards.All builds; run go generate ./dashboards", f.Name)
		}
	}
	for name := range want {
		t.Errorf("dashboard %s is not generated", name)
	}
}

func TestAllIsDeterministic(t *testing.T) {
	a, err := All()
	if err != nil {
		t.Fatal(err)
	}
	b, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if !bytes.Equal(a[i].JSON, b[i].JSON) {
			t.Errorf("%s renders differently on two runs", a[i].Name)
		}
	}
}

var (
	rangeSel = regexp.MustCompile(`\[([^\]]*)\]`)
	rateFn   = regexp.MustCompile(`\b(rate|irate|increase)\(`)
)

// TestDashboardConventions checks what Grafana users rely on: the
// datasource is a variable, job and instance are label_values variables
// every query filters on, every panel has a unit, rates are taken over
// $__rate_interval, and latency panels carry exemplars and a Jaeger link.
func TestDashboardConventions(t *testing.T) {
	uids := map[string]string{}
	for name, b := range loadBoards(t) {
		if prev, dup := uids[b.UID]; dup {
			t.Errorf("%s and %s share uid %q", name, prev, b.UID)
		}
		uids[b.UID] = name
		vars := map[string]bool{}
		for _, v := range b.Templating.List {
			vars[v.Name] = true
			switch v.Name {
			case "datasource":
				if v.Type != "datasource" || string(v.Query) != `"prometheus"` {
					t.Errorf("%s: datasource variable is %s/%s, want a prometheus datasource variable", name, v.Type, v.Query)
				}
			case "job", "instance":
				if v.Type != "query" || !strings.Contains(string(v.Query), "label_values(") {
					t.Errorf("%s: %s variable is not a label_values query: %s", name, v.Name, v.Query)
				}
				if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
					t.Errorf("%s: %s variable does not query ${datasource}", name, v.Name)
				}
			}
		}
		for _, want := range []string{"datasource", "job", "instance"} {
			if !vars[want] {
				t.Errorf("%s: no %q template variable", name, want)
			}
		}
		ps := b.panels()
		if len(ps) < 6 {
			t.Errorf("%s: only %d panels", name, len(ps))
		}
		ids := map[int]bool{}
		for _, p := range ps {
			where := fmt.Sprintf("%s / %q", name, p.Title)
			if ids[p.ID] {
				t.Errorf("%s: duplicate panel id %d", where, p.ID)
			}
			ids[p.ID] = true
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: no unit", where)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel datasource is not ${datasource}", where)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no queries", where)
			}
			// A latency time series of a traced operation: exemplars and a
			// Jaeger link let an SRE jump from a slow bucket to a trace.
			latency := p.Type == "timeseries" && p.FieldConfig.Defaults.Unit == "s" &&
				strings.Contains(p.Targets[0].Expr, "histogram_quantile") &&
				strings.Contains(p.Targets[0].Expr, "_duration_seconds_bucket")
			if latency {
				jaeger := false
				for _, l := range p.FieldConfig.Defaults.Links {
					jaeger = jaeger || strings.HasPrefix(l.URL, "${jaeger_url}/search?")
				}
				if !jaeger {
					t.Errorf("%s: latency panel without a Jaeger data link", where)
				}
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s: query %s datasource is not ${datasource}", where, tg.RefID)
				}
				if !strings.Contains(tg.Expr, `job=~"$job"`) || !strings.Contains(tg.Expr, `instance=~"$instance"`) {
					t.Errorf("%s: query %s does not filter on $job and $instance: %s", where, tg.RefID, tg.Expr)
				}
				if latency && !tg.Exemplar {
					t.Errorf("%s: latency query %s without exemplars", where, tg.RefID)
				}
				for _, loc := range rateFn.FindAllStringIndex(tg.Expr, -1) {
					m := rangeSel.FindStringSubmatch(tg.Expr[loc[1]:])
					if m == nil || m[1] != "$__rate_interval" {
						t.Errorf("%s: query %s takes a rate without [$__rate_interval]: %s", where, tg.RefID, tg.Expr)
					}
				}
			}
		}
	}
}

// TestQueriesParse runs every panel query, variables substituted, through
// promtool's PromQL parser as recording rules: a syntax error names the
// dashboard and panel without needing a running Prometheus.
func TestQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (scripts/install-test-deps.sh installs it): %v", err)
	}
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	var names []string
	for name, b := range loadBoards(t) {
		vars := boardVars(b)
		for _, p := range b.panels() {
			for _, tg := range p.Targets {
				rules = append(rules, rule{Record: fmt.Sprintf("check:panel%d", len(rules)), Expr: substitute(tg.Expr, vars, "15s")})
				names = append(names, fmt.Sprintf("%s / %q / %s", name, p.Title, tg.RefID))
			}
		}
	}
	// JSON is YAML: promtool reads this as a rules file.
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": rules}}}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		msg := string(out)
		for i, n := range names {
			msg = strings.ReplaceAll(msg, fmt.Sprintf("check:panel%d\"", i), n+"\"")
		}
		t.Fatalf("promtool check rules: %v\n%s", err, msg)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d rules found", len(rules))) {
		t.Fatalf("promtool did not check %d rules:\n%s", len(rules), out)
	}
}

// boardVars is the value each template variable has when the dashboard
// opens: its current value, or its allValue when that is "All".
func boardVars(b board) map[string]string {
	vars := map[string]string{}
	for _, v := range b.Templating.List {
		val := v.Current.Value
		if val == "$__all" {
			val = v.AllValue
		}
		vars[v.Name] = val
	}
	return vars
}

// substitute replaces Grafana's variables the way Grafana does before it
// sends a query: template variables by their value, and the built-in
// interval variables by durations fitting a 1s scrape interval and a
// minutes-long test ($__rate_interval by rateInterval).
func substitute(expr string, vars map[string]string, rateInterval string) string {
	builtins := []string{
		"$__rate_interval", rateInterval,
		"$__interval", "5s",
		"$__range", "5m",
	}
	r := strings.NewReplacer(builtins...)
	expr = r.Replace(expr)
	for name, val := range vars {
		expr = strings.ReplaceAll(expr, "${"+name+"}", val)
		expr = regexp.MustCompile(`\$`+regexp.QuoteMeta(name)+`\b`).ReplaceAllLiteralString(expr, val)
	}
	return expr
}
