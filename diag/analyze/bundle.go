package analyze

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Bundle file names (see `wardgate diag capture` and the `up` supervisor).
const (
	BundleCore        = "core"
	BundleExe         = "exe"
	BundleMeta        = "bundle.json"
	BundleCrashOutput = "crash.txt"
)

// OptionsFromBundle returns the Options for a bundle directory: its core
// and exe, and crash.txt when present. Only when one of those files is
// missing are the "core", "exe" and "crash_output" keys of bundle.json
// consulted (relative names are inside the bundle). TraceURLTemplate is
// left to the caller (the CLI reads TRACE_URL_TEMPLATE).
func OptionsFromBundle(dir string) (Options, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return Options{}, fmt.Errorf("analyze: bundle: %w", err)
	}
	if !st.IsDir() {
		return Options{}, fmt.Errorf("analyze: bundle %s is not a directory", dir)
	}
	o := Options{
		Core: filepath.Join(dir, BundleCore),
		Exe:  filepath.Join(dir, BundleExe),
	}
	if data, err := os.ReadFile(filepath.Join(dir, BundleMeta)); err == nil {
		var meta struct {
			Core        string `json:"core"`
			Exe         string `json:"exe"`
			CrashOutput string `json:"crash_output"`
		}
		if err := json.Unmarshal(data, &meta); err != nil {
			return Options{}, fmt.Errorf("analyze: bundle %s: %w", BundleMeta, err)
		}
		if meta.Core != "" && !exists(o.Core) {
			o.Core = inDir(dir, meta.Core)
		}
		if meta.Exe != "" && !exists(o.Exe) {
			o.Exe = inDir(dir, meta.Exe)
		}
		if meta.CrashOutput != "" && !exists(filepath.Join(dir, BundleCrashOutput)) && exists(inDir(dir, meta.CrashOutput)) {
			o.CrashOutput = inDir(dir, meta.CrashOutput)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return Options{}, fmt.Errorf("analyze: bundle: %w", err)
	}
	if o.CrashOutput == "" {
		if _, err := os.Stat(filepath.Join(dir, BundleCrashOutput)); err == nil {
			o.CrashOutput = filepath.Join(dir, BundleCrashOutput)
		}
	}
	for _, p := range []string{o.Core, o.Exe} {
		if _, err := os.Stat(p); err != nil {
			return Options{}, fmt.Errorf("analyze: bundle %s: %w", dir, err)
		}
	}
	return o, nil
}

func inDir(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
