package main

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// commandSet is a level of subcommands (wardgate, wardgate diag) with the
// text printed around its command list.
type commandSet struct {
	name   string // "wardgate", "wardgate diag"
	header string // printed before the list
	footer string // printed after it
	cmds   map[string]command
}

func (s commandSet) usage(w io.Writer) {
	fmt.Fprint(w, s.header)
	names := make([]string, 0, len(s.cmds))
	width := 0
	for n := range s.cmds {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s %s\n", width, n, s.cmds[n].summary)
	}
	fmt.Fprint(w, s.footer)
}

// dispatch runs the subcommand named by args[0]: help on -h/--help/help
// (exit 0); the list of commands on stderr and exit 2 when it is missing;
// one line naming the unknown command and the help, exit 2, when it is
// unknown (the list would push the typo out of sight).
func (s commandSet) dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		s.usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		s.usage(stdout)
		return 0
	}
	cmd, ok := s.cmds[args[0]]
	if !ok {
		return usageError(stderr, s.name, "unknown command %q", args[0])
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}
