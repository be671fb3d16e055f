package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wardgate/wardgate/diag/pprofweb"
)

const profileWebUsage = `Usage: wardgate diag profile web --http ADDR FILE|DIR...
       wardgate diag profile --target ADMIN_URL --type TYPE --http ADDR   (capture, then show it)
       wardgate diag profile --http ADDR FILE...

Serves pprof's own web UI (flame graph, top, call graph, source, peek) for
saved profiles, as go tool pprof -http does, without a Go toolchain: the UI
is built into wardgate. Prints the URL and serves until Ctrl-C; it never
opens a browser (open the URL yourself, or tunnel it: ssh -L PORT:ADDR).
Several files of the same type are merged. A DIR is a directory holding
exactly one *.pb.gz (e.g. a diag watch bundle); name the file when it holds
several.

Pages under the URL: /ui/flamegraph (the default), /ui/top, /ui/ (graph),
/ui/source?f=FUNC_REGEXP, /ui/peek?f=FUNC_REGEXP.
`

// runDiagProfileWeb is `wardgate diag profile web`.
func runDiagProfileWeb(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate diag profile web", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("http", "127.0.0.1:0", "`ADDR` (host:port) to serve the UI on; port 0 picks a free one; keep it on loopback (no authentication)")
	fs.Usage = usageFunc(fs, profileWebUsage, "docs/runbooks/profile.md")
	var pos []string
	if code, ok := parseFlags(fs, stdout, stderr, func() (err error) { pos, err = parseInterleaved(fs, args); return err }); !ok {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "wardgate diag profile web: name at least one profile file (or a directory holding one); see 'wardgate diag profile web --help'")
		return 2
	}
	return serveProfileUI(ctx, "wardgate diag profile web", *addr, pos, stdout, stderr)
}

// serveSavedProfile is the end of `diag profile --http ADDR`: with ADDR
// set, the web UI of the whole saved profile (pprof's UI filters by label
// itself: Refine, or tagfocus=trace_id=...); without, nothing (exit 0).
func serveSavedProfile(ctx context.Context, addr, path string, out, stderr io.Writer) int {
	if addr == "" {
		return 0
	}
	return serveProfileUI(ctx, "wardgate diag profile", addr, []string{path}, out, stderr)
}

// serveProfileUI checks addr and the profile paths, then serves the UI
// until ctx ends. It prints the URL on out once the UI answers.
func serveProfileUI(ctx context.Context, cmd, addr string, paths []string, out, stderr io.Writer) int {
	if !validHTTPAddr(addr) {
		fmt.Fprintf(stderr, "%s: --http: want host:port (e.g. 127.0.0.1:0), got %q\n", cmd, addr)
		return 2
	}
	files, err := profileFiles(paths)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	err = pprofweb.Serve(ctx, pprofweb.Options{
		Addr:     addr,
		Profiles: files,
		Log:      stderr,
		Ready: func(url string) {
			fmt.Fprintf(out, "pprof web UI of %s: %s (flame graph: %sflamegraph); Ctrl-C stops it\n", strings.Join(files, " "), url, url)
		},
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// validHTTPAddr reports whether addr is host:port with a port.
func validHTTPAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != ""
}

// profileFiles expands paths: a file stays, a directory must hold exactly
// one *.pb.gz.
func profileFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		found, err := filepath.Glob(filepath.Join(p, "*.pb.gz"))
		if err != nil {
			return nil, err
		}
		slices.Sort(found)
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("%s holds no *.pb.gz profile", p)
		case 1:
			files = append(files, found[0])
		default:
			return nil, fmt.Errorf("%s holds several profiles (%s): name the one to show", p, strings.Join(found, ", "))
		}
	}
	return files, nil
}
