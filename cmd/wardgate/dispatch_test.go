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
		{args: []string{"nope"}, code: 2, err: `wardgate: unknown command "nope"`},
		{args: []string{"diag"}, code: 2, err: "crash-setup"},
		{args: []string{"diag", "-h"}, code: 0, out: "goroutines"},
		{args: []string{"diag", "bogus"}, code: 2, err: `wardgate diag: unknown command "bogus"`},
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
	}
}
