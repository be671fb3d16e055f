package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseFlags runs parse (fs.Parse, or a parser that also collects
// positional arguments) the way CLI users expect: -h/--help prints the
// usage once, on stdout, and returns (0, false); a bad flag prints Parse's
// one-line error and then the usage on stderr, and returns (2, false).
//
// flag.FlagSet alone prints the usage to its single output for -h too, so
// a command that also printed it on stdout for -h showed it twice.
func parseFlags(fs *flag.FlagSet, stdout, stderr io.Writer, parse func() error) (code int, ok bool) {
	usage := fs.Usage
	if usage == nil {
		usage = func() {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	}
	fs.Usage = func() {} // Parse must not print it: we pick the stream below
	fs.SetOutput(stderr)
	err := parse()
	fs.Usage = usage
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(stderr)
		return 0, false
	default:
		fs.Usage()
		return 2, false
	}
}
