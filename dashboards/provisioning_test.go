package dashboards

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestLocalGrafanaProvisioning checks dashboards/provisioning/, the Grafana
// provisioning docs/dashboards.md runs (in a container or a local Grafana)
// against `wardgate up --prometheus`: the Prometheus data source comes from
// ${PROMETHEUS_URL} and is the default, exemplars link to the Jaeger data
// source, the file provider reads ${WARDGATE_DASHBOARDS}, and the doc's
// commands set those variables and mount or point at these very paths.
// There is no Docker engine nor Grafana where the tests run; this checks
// what Grafana would read.
func TestLocalGrafanaProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
			JSONData  struct {
				Exemplars []struct {
					Name          string `yaml:"name"`
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"exemplarTraceIdDestinations"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAMLFile(t, filepath.Join("provisioning", "datasources", "wardgate.yaml"), &ds)
	types := map[string]string{}
	for _, d := range ds.Datasources {
		types[d.UID] = d.Type
	}
	prom := false
	for _, d := range ds.Datasources {
		if d.Type != "prometheus" {
			continue
		}
		prom = true
		if d.URL != "${PROMETHEUS_URL}" || !d.IsDefault {
			t.Errorf("prometheus data source: url %q, default %v; want ${PROMETHEUS_URL}, the default", d.URL, d.IsDefault)
		}
		if len(d.JSONData.Exemplars) == 0 {
			t.Errorf("prometheus data source: no exemplarTraceIdDestinations")
		}
		for _, e := range d.JSONData.Exemplars {
			if e.Name != "trace_id" || types[e.DatasourceUID] != "jaeger" {
				t.Errorf("exemplars: label %q to data source %q (%s); want trace_id to the Jaeger data source", e.Name, e.DatasourceUID, types[e.DatasourceUID])
			}
		}
	}
	if ds.APIVersion != 1 || !prom {
		t.Errorf("datasources: apiVersion %d, prometheus data source %v", ds.APIVersion, prom)
	}

	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAMLFile(t, filepath.Join("provisioning", "dashboards", "wardgate.yaml"), &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path != "${WARDGATE_DASHBOARDS}" {
		t.Errorf("dashboard provisioning: %+v; want one file provider on ${WARDGATE_DASHBOARDS}", dp)
	}

	doc, err := os.ReadFile(filepath.Join("..", "docs", "dashboards.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"wardgate up --prometheus --prometheus-listen 127.0.0.1:9090",
		"PROMETHEUS_URL=http://127.0.0.1:9090",
		`-v "$PWD/dashboards/provisioning:/etc/grafana/provisioning:ro"`,
		`-v "$PWD/dashboards:/var/lib/grafana/dashboards:ro"`,
		"WARDGATE_DASHBOARDS=/var/lib/grafana/dashboards",
		`WARDGATE_DASHBOARDS="$PWD/dashboards"`,
		`GF_PATHS_PROVISIONING="$PWD/dashboards/provisioning"`,
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/dashboards.md no longer says %s; keep it and dashboards/provisioning/ in step", want)
		}
	}
}

func readYAMLFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
