package analyze

import (
	"fmt"

	"github.com/wardgate/wardgate/diag/bundle"
)

// OptionsFromBundle returns the Options for a bundle directory (a capture
// or a post-mortem; the layout is diag/bundle's): its core and exe, and
// crash.txt when present. TraceURLTemplate is left to the caller (the CLI
// reads TRACE_URL_TEMPLATE).
func OptionsFromBundle(dir string) (Options, error) {
	f, err := bundle.Locate(dir)
	if err != nil {
		return Options{}, fmt.Errorf("analyze: %w", err)
	}
	return Options{Core: f.Core, Exe: f.Exe, CrashOutput: f.CrashOutput}, nil
}
