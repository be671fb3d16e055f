package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDispatchHelpAndErrors(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{args: nil, code: 2, err: "Commands:"},
		{args: []string{"--help"}, code: 0, out: "up "},
		{args: []string{"help"}, code: 0, out: "diag "},
		{args: []string{"nope"}, code: 2, err: `wardgate: unknown command "nope" (see 'wardgate --help')` + "\n"},
		{args: []string{"diag"}, code: 2, err: "crash-setup"},
		{args: []string{"diag", "-h"}, code: 0, out: "goroutines"},
		{args: []string{"diag", "bogus"}, code: 2, err: `wardgate diag: unknown command "bogus" (see 'wardgate diag --help')` + "\n"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("wardgate %v: exit %d, want %d", tc.args, code, tc.code)
		}
		if tc.out != "" && !strings.Contains(stdout.String(), tc.out) {
			t.Errorf("wardgate %v: stdout %q lacks %q", tc.args, stdout.String(), tc.out)
		}
		if tc.err != "" && !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("wardgate %v: stderr %q lacks %q", tc.args, stderr.String(), tc.err)
		}
		// An unknown command is one line: a list after it pushed it away.
		if strings.Contains(tc.err, "unknown command") && stderr.String() != tc.err {
			t.Errorf("wardgate %v: stderr %q, want exactly %q", tc.args, stderr.String(), tc.err)
		}
	}
}

// Every command's -h prints its usage once, on stdout, with exit 0; a bad
// flag (unknown, or a value that does not parse) prints one line on
// stderr, the error and where the help is, with exit 2, and nothing on
// stdout (scripts parse stdout): the whole usage after it scrolled the
// error out of sight.
func TestEveryCommandHelpAndBadFlag(t *testing.T) {
	for _, cmd := range [][]string{
		{"up"}, {"gateway"}, {"jobqueue"}, {"probe"},
		{"diag", "capture"}, {"diag", "analyze"}, {"diag", "crash-setup"},
		{"diag", "profile"}, {"diag", "profile", "diff"}, {"diag", "goroutines"}, {"diag", "watch"}, {"diag", "triage"},
	} {
		name := strings.Join(cmd, " ")
		helpHint := "(see 'wardgate " + name + " --help')\n"
		for _, bad := range [][]string{{"--no-such-flag"}, {"--no-such-flag=1", "x"}, {"--helpp"}} {
			var stdout, stderr bytes.Buffer
			if code := run(append(cmd[:len(cmd):len(cmd)], bad...), &stdout, &stderr); code != 2 {
				t.Errorf("%s %v: exit %d, want 2", name, bad, code)
			}
			e := stderr.String()
			if stdout.Len() != 0 || strings.Count(e, "\n") != 1 || !strings.HasPrefix(e, "wardgate "+name+": ") ||
				!strings.Contains(e, strings.TrimLeft(strings.SplitN(bad[0], "=", 2)[0], "-")) || !strings.HasSuffix(e, helpHint) {
				t.Errorf("%s %v: stdout %q, stderr %q; want one line on stderr naming the command, the flag and %q", name, bad, stdout.String(), e, helpHint)
			}
		}
	}
	for _, cmd := range [][]string{
		{"up"}, {"gateway"}, {"jobqueue"}, {"probe"},
		{"diag", "capture"}, {"diag", "analyze"}, {"diag", "crash-setup"},
		{"diag", "profile"}, {"diag", "profile", "diff"}, {"diag", "goroutines"}, {"diag", "watch"}, {"diag", "triage"},
	} {
		name := strings.Join(cmd, " ")
		var stdout, stderr bytes.Buffer
		if code := run(append(cmd[:len(cmd):len(cmd)], "-h"), &stdout, &stderr); code != 0 {
			t.Errorf("%s -h: exit %d, want 0", name, code)
		}
		out := stdout.String()
		if n := strings.Count(out, "Usage"); n != 1 {
			t.Errorf("%s -h: %d usage texts on stdout, want 1:\n%s", name, n, out)
		}
		if !strings.Contains(out, "-") {
			t.Errorf("%s -h: no flags listed:\n%s", name, out)
		}
		if stderr.Len() != 0 {
			t.Errorf("%s -h: stderr %q, want nothing", name, stderr.String())
		}

	}
}
