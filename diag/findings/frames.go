package findings

import (
	"fmt"
	"strings"
)

// Frame is one stack frame, innermost first in a stack.
type Frame struct {
	Function string `json:"function"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
}

// Short is "function (dir/file.go:line)": the headline form.
func (f Frame) Short() string {
	if f.File == "" {
		return f.Function
	}
	file := f.File
	if i := strings.LastIndexByte(file, '/'); i > 0 {
		if j := strings.LastIndexByte(file[:i], '/'); j >= 0 {
			file = file[j+1:]
		}
	}
	return fmt.Sprintf("%s (%s:%d)", f.Function, file, f.Line)
}

func (f Frame) String() string {
	if f.File == "" {
		return f.Function
	}
	return fmt.Sprintf("%s (%s:%d)", f.Function, f.File, f.Line)
}

// plumbing are import-path prefixes of well-known libraries whose frames
// are never the culprit while an application frame calls them: a finding
// names the user's code that called into them (Sentry's in-app frames).
var plumbing = []string{
	"golang.org/x/", "google.golang.org/grpc", "google.golang.org/protobuf",
	"go.opentelemetry.io/", "github.com/prometheus/", "gocloud.dev/",
	"github.com/aws/", "github.com/google/pprof", "github.com/klauspost/",
	"github.com/fsnotify/", "gopkg.in/", "go.yaml.in/", "github.com/go-delve/",
	"github.com/maruel/panicparse", "github.com/google/uuid", "github.com/gorilla/",
	"github.com/go-chi/", "github.com/gin-gonic/", "github.com/labstack/",
	"github.com/valyala/", "github.com/jackc/", "github.com/go-sql-driver/",
	"github.com/redis/", "github.com/grpc-ecosystem/", "github.com/cenkalti/",
	"github.com/sirupsen/", "go.uber.org/", "github.com/rs/zerolog",
	"github.com/johannesboyne/gofakes3", "github.com/mattn/", "github.com/spf13/",
	"k8s.io/", "sigs.k8s.io/", "github.com/segmentio/", "github.com/IBM/sarama",
	"github.com/nats-io/", "github.com/hashicorp/", "github.com/miekg/dns",
	"github.com/felixge/httpsnoop", "github.com/go-logr/", "github.com/cespare/",
}

// wardgatePath is wardgate's own module: generic machinery (the queue's
// workers, the gateway's proxy) when another program embeds it.
const wardgatePath = "github.com/wardgate/wardgate"

// Classifier tells application frames from the runtime, the standard
// library and libraries' plumbing.
type Classifier struct {
	app        []string // import-path prefixes of application code
	mainModule string
}

// NewClassifier returns a classifier for a program whose main module is
// mainModule (from its build info; "" when unknown). app, when not empty,
// replaces the main module as the application's import-path prefixes
// (--app, repeatable): to narrow (one package of a monorepo) or to widen (a
// company's shared libraries). Package main is always application code.
func NewClassifier(mainModule string, app []string) *Classifier {
	c := &Classifier{mainModule: mainModule}
	switch {
	case len(app) > 0:
		c.app = append(c.app, app...)
	case mainModule != "" && mainModule != "command-line-arguments":
		c.app = []string{mainModule}
	}
	return c
}

// App returns the prefixes used, for the report.
func (c *Classifier) App() []string {
	if len(c.app) == 0 {
		return []string{"main (main module unknown: every frame outside the standard library and well-known libraries)"}
	}
	return append([]string{"main"}, c.app...)
}

// pkgPath is the import path of a function name as the runtime prints it:
// "github.com/a/b.(*T).M" -> "github.com/a/b", "main.main.func1" -> "main".
func pkgPath(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	rest := fn[slash+1:]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

// IsStdlib reports whether fn is in the Go standard library or the runtime
// (its import path's first element has no dot; package main excluded).
func IsStdlib(fn string) bool {
	p := pkgPath(fn)
	if p == "main" {
		return false
	}
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".") && !strings.HasPrefix(fn, "0x") && !strings.HasPrefix(fn, "?")
}

func hasPathPrefix(p, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return p == prefix || strings.HasPrefix(p, prefix+"/") || (strings.HasSuffix(prefix, ".") && strings.HasPrefix(p, prefix))
}

func isPlumbing(p string) bool {
	for _, pre := range plumbing {
		if strings.HasPrefix(p, pre) || p == strings.TrimSuffix(pre, "/") {
			return true
		}
	}
	return false
}

// IsApp reports whether fn is application code.
func (c *Classifier) IsApp(fn string) bool {
	p := pkgPath(fn)
	if p == "main" {
		return true
	}
	if len(c.app) > 0 {
		for _, a := range c.app {
			if hasPathPrefix(p, a) {
				return true
			}
		}
		return false
	}
	// Main module unknown: anything that is not the standard library,
	// well-known plumbing or wardgate's own machinery.
	return !IsStdlib(fn) && !isPlumbing(p) && !hasPathPrefix(p, wardgatePath)
}

// tier ranks a frame as a culprit candidate: 0 application, 1 another
// library, 2 wardgate or well-known plumbing, 3 the standard library, 4 the
// runtime.
func (c *Classifier) tier(fn string) int {
	if c.IsApp(fn) {
		return 0
	}
	p := pkgPath(fn)
	switch {
	case p == "runtime" || strings.HasPrefix(p, "runtime/internal") || strings.HasPrefix(p, "internal/runtime"):
		return 4
	case IsStdlib(fn):
		return 3
	case isPlumbing(p) || hasPathPrefix(p, wardgatePath):
		return 2
	}
	return 1
}

// Culprit returns the index of the frame to name in frames (innermost
// first): the innermost application frame, else the innermost frame of the
// best tier below it. -1 for an empty stack.
func (c *Classifier) Culprit(frames []Frame) int {
	best, bestTier := -1, 5
	for i, f := range frames {
		t := c.tier(f.Function)
		if t < bestTier {
			best, bestTier = i, t
			if t == 0 {
				break
			}
		}
	}
	return best
}

// HasApp reports whether any frame is application code.
func (c *Classifier) HasApp(frames []Frame) bool {
	for _, f := range frames {
		if c.IsApp(f.Function) {
			return true
		}
	}
	return false
}
