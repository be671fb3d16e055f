// Command gen writes wardgate's Grafana dashboards (built by package
// dashboards) as JSON files. `go generate ./dashboards` runs it with the
// dashboards directory as working directory.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/wardgate/wardgate/dashboards"
)

func main() {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(os.Stdout)
	out := fs.String("out", ".", "directory to write the dashboard JSON files to")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return
		}
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := dashboards.All()
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.JSON, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
	return nil
}
