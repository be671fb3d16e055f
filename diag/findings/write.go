package findings

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes the Findings section: a ranked list, one headline line
// per finding and a few lines of evidence, then one "idle (expected)"
// line. markdown selects a Markdown heading and list; otherwise plain text
// for terminals. With nothing found it says so in one line.
func (r *Result) WriteText(w io.Writer, markdown bool) error {
	var b strings.Builder
	if markdown {
		b.WriteString("## Findings\n\n")
	} else {
		b.WriteString("Findings\n")
	}
	if len(r.Findings) == 0 {
		b.WriteString("No findings: nothing suspicious (no crash, deadlock, stuck lock, leak, hung I/O, stuck queue, hot function or memory growth detected).\n")
	}
	for i, f := range r.Findings {
		if markdown {
			fmt.Fprintf(&b, "%d. **[%s] %s** — %s\n", i+1, f.Severity, f.Kind, f.Headline)
		} else {
			fmt.Fprintf(&b, "%2d. [%s] %s: %s\n", i+1, f.Severity, f.Kind, f.Headline)
		}
		ind := "      "
		if markdown {
			ind = "   - "
		}
		if f.File != "" {
			fmt.Fprintf(&b, "%sat %s:%d\n", ind, f.File, f.Line)
		}
		for _, e := range f.Evidence {
			fmt.Fprintf(&b, "%s%s\n", ind, e)
		}
		for j, id := range f.TraceIDs {
			if j < len(f.TraceURLs) {
				if markdown {
					fmt.Fprintf(&b, "%strace [%s](%s)\n", ind, id, f.TraceURLs[j])
				} else {
					fmt.Fprintf(&b, "%strace %s %s\n", ind, id, f.TraceURLs[j])
				}
			} else {
				fmt.Fprintf(&b, "%strace %s\n", ind, id)
			}
		}
		if f.Ref != "" {
			fmt.Fprintf(&b, "%ssee %s below\n", ind, f.Ref)
		}
	}
	if r.Idle != nil && r.Idle.Goroutines > 0 {
		if markdown {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Idle (expected): %d goroutines in %d groups wait by design (%s)\n", r.Idle.Goroutines, r.Idle.Groups, strings.Join(r.Idle.Where, ", "))
	}
	for _, n := range r.Notes {
		if markdown {
			fmt.Fprintf(&b, "\n_%s_\n", n)
		} else {
			fmt.Fprintf(&b, "Note: %s\n", n)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// First returns the first finding's headline, or "no findings".
func (r *Result) First() string {
	if len(r.Findings) == 0 {
		return "no findings"
	}
	f := r.Findings[0]
	return fmt.Sprintf("[%s] %s: %s", f.Severity, f.Kind, f.Headline)
}
