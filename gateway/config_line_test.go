package gateway

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var yamlLineRE = regexp.MustCompile(`^config: yaml: line (\d+): `)

// syntaxLine returns the line a YAML syntax error of Parse names, or 0
// when err is no syntax error (a valid mutation, or a type or validation
// error, which name the field instead).
func syntaxLine(t *testing.T, err error) int {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), "config: yaml: ") || strings.HasPrefix(err.Error(), "config: yaml: unmarshal") {
		return 0
	}
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("syntax error names no line: %v", err)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestConfigSyntaxErrorLine breaks every line of the shipped configs in
// the ways an editor does (an indentation off by one or three, a tab, a
// quote left open) and checks that the error names the broken line: the
// lines before it are still valid YAML, and it is the broken line or, when
// the broken line alone is still valid (a key indented one more becomes a
// nested key), the next one; an open quote is valid until the document
// ends or a later quote closes it, so its error is on that line or later. yaml/v3 alone named the line where the
// enclosing block starts: an indentation error on line 5 read "line 2".
func TestConfigSyntaxErrorLine(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{"validYAML": strings.TrimPrefix(validYAML, "\n"), "example.yaml": string(example)}
	mutations := map[string]func(string) string{
		"indent+1": func(s string) string { return " " + s },
		"indent+3": func(s string) string { return "   " + s },
		"indent-1": func(s string) string { return strings.TrimPrefix(s, " ") },
		"tab":      func(s string) string { return "\t" + s },
		"open quote": func(s string) string {
			if i := strings.Index(s, ": "); i >= 0 {
				return s[:i+2] + `"` + s[i+2:]
			}
			return s
		},
	}
	checked := 0
	for docName, doc := range docs {
		lines := strings.SplitAfter(doc, "\n")
		for k := range lines {
			if strings.TrimSpace(lines[k]) == "" || strings.HasPrefix(strings.TrimSpace(lines[k]), "#") {
				continue
			}
			for name, mutate := range mutations {
				m := append([]string(nil), lines...)
				m[k] = mutate(m[k])
				broken := strings.Join(m, "")
				_, err := Parse([]byte(broken))
				got := syntaxLine(t, err)
				if got == 0 {
					continue
				}
				checked++
				line := k + 1
				lo, hi := line, line+1
				switch name {
				case "tab":
					hi = line // nothing else can be blamed
				case "open quote":
					hi = len(lines) // the quote may close on a later line
				}
				if got < lo || got > hi {
					t.Errorf("%s, line %d %s: error %q names line %d, want %d..%d\n%s", docName, line, name, err, got, lo, hi, broken)
					continue
				}
				// Everything before the named line is valid YAML (but an
				// open quote that a later quote closes is valid across lines).
				if name == "open quote" {
					continue
				}
				if _, err := decode([]byte(strings.Join(m[:got-1], ""))); err != nil && syntaxLine(t, err) != 0 {
					t.Errorf("%s, line %d %s: error names line %d but line %d already fails: %v", docName, line, name, got, syntaxLine(t, err), err)
				}
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d mutations gave a syntax error: the test checks too little", checked)
	}
}

// The case from the report: a key indented one space too few on line 5,
// inside the routes list that starts on line 2.
func TestConfigIndentErrorLine5(t *testing.T) {
	const doc = "listen: 127.0.0.1:8080\nroutes:\n  - path_prefix: /v1/\n    upstream: jq\n   strip_prefix: /v1\nupstreams:\n  jq:\n    targets: [{url: \"http://127.0.0.1:9001\"}]\n"
	_, err := Parse([]byte(doc))
	if err == nil || !strings.HasPrefix(err.Error(), "config: yaml: line 5: ") {
		t.Fatalf("got %v, want an error on line 5", err)
	}
	// A tab on line 1 (yaml/v3 leaves out "line 1").
	_, err = Parse([]byte("\tlisten: 127.0.0.1:8080\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "config: yaml: line 1: ") {
		t.Fatalf("got %v, want an error on line 1", err)
	}
}
