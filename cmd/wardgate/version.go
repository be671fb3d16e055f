package main

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version and commit name the build when the go command cannot: set them
// at build time with
//
//	go build -ldflags "-X main.version=v1.4.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/wardgate
//
// A build outside a git checkout (a source tarball, a container build
// without .git) or with -buildvcs=false has no vcs.revision, and a build
// of the main module has no module version: `wardgate version` printed
// "(devel) (unknown)", which names no build at all. These are the only
// package-level variables of the command because -X can set nothing else;
// nothing writes them at run time.
var (
	version string
	commit  string
)

// buildDesc is what `wardgate version` prints, each field with where it
// came from, best first.
type buildDesc struct {
	Version   string // -X main.version, else the module version, else "(devel)"
	Revision  string // vcs.revision (+dirty), else -X main.commit, else ""
	BuildID   string // the Go build ID of this executable: always there, unique per build
	GoVersion string
}

func describeBuild() buildDesc {
	d := buildDesc{Version: "(devel)"}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		d.GoVersion = bi.GoVersion
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			d.Version = v // go install github.com/wardgate/wardgate/cmd/wardgate@v1.4.0
		}
		dirty := ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				d.Revision = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if d.Revision != "" {
			d.Revision += dirty
		}
	}
	if version != "" {
		d.Version = version
	}
	if d.Revision == "" {
		d.Revision = commit
	}
	if exe, err := os.Executable(); err == nil {
		d.BuildID, _ = goBuildID(exe)
	}
	return d
}

// goBuildID reads the Go build ID note of an ELF executable (what
// `go tool buildid FILE` prints): it changes with every change to the
// source, the dependencies, the toolchain or the flags.
func goBuildID(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("build id: %w", err)
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return "", fmt.Errorf("build id: %s has no .note.go.buildid", path)
	}
	data, err := s.Data()
	if err != nil {
		return "", fmt.Errorf("build id: %w", err)
	}
	// An ELF note: namesz, descsz, type (4 bytes each), name "Go\0\0", desc.
	const hdr = 16
	if len(data) < hdr {
		return "", fmt.Errorf("build id: short note in %s", path)
	}
	n := int(f.ByteOrder.Uint32(data[4:8]))
	if len(data) < hdr+n {
		return "", fmt.Errorf("build id: short note in %s", path)
	}
	return strings.TrimRight(string(data[hdr:hdr+n]), "\x00"), nil
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			fmt.Fprint(stdout, `Usage: wardgate version

Prints the version, the source revision, the Go build ID and the Go version
of this binary, e.g.
  wardgate v1.4.0 (3f2a...c9+dirty) build 8Xk...Qz go1.26.8
The version is -ldflags "-X main.version=..." or the module version
(go install ...@v1.4.0), else (devel); the revision is git's (go build in a
checkout stamps it) or -X main.commit=...; the build ID is always there.
`)
			return 0
		}
		return usageError(stderr, "wardgate version", "unexpected argument %q", args[0])
	}
	d := describeBuild()
	rev := d.Revision
	if rev == "" {
		rev = "no revision"
	}
	line := fmt.Sprintf("wardgate %s (%s)", d.Version, rev)
	if d.BuildID != "" {
		line += " build " + d.BuildID
	}
	fmt.Fprintln(stdout, line+" "+d.GoVersion)
	return 0
}
