package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// parseFlags runs parse (fs.Parse, or a parser that also collects
// positional arguments) the way CLI users expect: -h/--help prints the
// usage once, on stdout, and returns (0, false); a bad flag prints one
// line on stderr, the error and where the help is ("wardgate up: flag
// provided but not defined: -bogus (see 'wardgate up --help')"), and
// returns (2, false). fs.Name() must be the command as typed, e.g.
// "wardgate diag profile".
//
// The whole usage after a typo (60 lines for up) scrolled the error out of
// sight; flag.FlagSet alone also printed the usage to its single output for
// -h, so a command that printed it on stdout for -h showed it twice.
func parseFlags(fs *flag.FlagSet, stdout, stderr io.Writer, parse func() error) (code int, ok bool) {
	usage := fs.Usage
	if usage == nil {
		usage = func() {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	}
	fs.Usage = func() {}     // Parse must not print it: we pick the stream below
	fs.SetOutput(io.Discard) // nor its error: we print it in one line below
	err := parse()
	fs.Usage = usage
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(stderr)
		return 0, false
	default:
		return usageError(stderr, fs.Name(), "%v", err), false
	}
}

// usageError prints one line for a command line the command cannot run,
// "NAME: MESSAGE (see 'NAME --help')", and returns exit code 2 (bad usage).
func usageError(stderr io.Writer, name, format string, a ...any) int {
	fmt.Fprintf(stderr, "%s: %s (see '%s --help')\n", name, fmt.Sprintf(format, a...), name)
	return 2
}
