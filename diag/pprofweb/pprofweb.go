// Package pprofweb serves pprof's own web UI (flame graph, top, graph,
// source, peek, disassembly) for saved profiles, through the
// github.com/google/pprof/driver package as `go tool pprof -http` does: the
// UI is compiled into wardgate, so an SRE needs no Go toolchain on the
// machine to look at a flame graph of what wardgate captured.
//
// It never opens a browser (servers are headless): it listens, reports the
// URL, and serves until its context ends.
package pprofweb

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/driver"
)

// Options says what to serve and where.
type Options struct {
	// Addr is host:port to listen on; port 0 picks a free one. Keep it on
	// loopback: the UI has no authentication, and a profile shows code
	// paths and label values (trace IDs).
	Addr string
	// Profiles are the profile files to show (several are merged, as by
	// go tool pprof; they must be of the same type).
	Profiles []string
	// Ready is called with the UI's URL (http://HOST:PORT/ui/) once it
	// accepts connections. Optional.
	Ready func(url string)
	// Log receives pprof's own messages (warnings about the profile,
	// usage errors). Nil discards them.
	Log io.Writer
}

// Serve listens on o.Addr and serves the web UI of o.Profiles until ctx
// ends (then it returns nil) or pprof fails to read them.
func Serve(ctx context.Context, o Options) error {
	if len(o.Profiles) == 0 {
		return errors.New("pprof web UI: no profile to show")
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("pprof web UI: %w", err)
	}
	defer ln.Close()
	// pprof is told the address already bound (so it picks no port of its
	// own), not to open a browser, and not to look for symbolizers: Go
	// profiles carry their function names.
	args := append([]string{"-http=" + ln.Addr().String(), "-no_browser", "-symbolize=none"}, o.Profiles...)
	pf := &flags{fs: flag.NewFlagSet("pprof", flag.ContinueOnError), args: args, out: log}
	pf.fs.SetOutput(log)
	served := false
	err = driver.PProf(&driver.Options{
		Flagset: pf,
		UI:      &ui{out: log},
		HTTPServer: func(a *driver.HTTPServerArgs) error {
			served = true
			return serve(ctx, ln, a.Handlers, o.Ready)
		},
	})
	if err != nil {
		return fmt.Errorf("pprof web UI: %w", err)
	}
	if !served {
		// pprof returns nil after printing its usage for bad arguments.
		return fmt.Errorf("pprof web UI: pprof did not start its server for %s", strings.Join(o.Profiles, " "))
	}
	return nil
}

// serve is the HTTP server pprof's handlers run in: like pprof's own
// (the UI under /ui/, / redirecting there) but on the listener Serve
// bound, and stopped by ctx.
func serve(ctx context.Context, ln net.Listener, handlers map[string]http.Handler, ready func(string)) error {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := handlers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
	mux := http.NewServeMux()
	mux.Handle("/ui/", http.StripPrefix("/ui", ui))
	mux.Handle("/", http.RedirectHandler("/ui/", http.StatusTemporaryRedirect))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-stop:
			return
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // a page still rendering after 5s is cut off
	})
	defer wg.Wait()
	defer close(stop)
	if ready != nil {
		ready("http://" + ln.Addr().String() + "/ui/")
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// flags is pprof's command line, parsed from args with the standard flag
// package (pprof's own implementation reads os.Args).
type flags struct {
	fs    *flag.FlagSet
	args  []string
	extra []string
	out   io.Writer
}

func (f *flags) Bool(n string, d bool, u string) *bool          { return f.fs.Bool(n, d, u) }
func (f *flags) Int(n string, d int, u string) *int             { return f.fs.Int(n, d, u) }
func (f *flags) Float64(n string, d float64, u string) *float64 { return f.fs.Float64(n, d, u) }
func (f *flags) String(n string, d string, u string) *string    { return f.fs.String(n, d, u) }
func (f *flags) StringList(n string, d string, u string) *[]*string {
	return &[]*string{f.fs.String(n, d, u)}
}
func (f *flags) ExtraUsage() string      { return strings.Join(f.extra, "\n") }
func (f *flags) AddExtraUsage(eu string) { f.extra = append(f.extra, eu) }
func (f *flags) Parse(usage func()) []string {
	f.fs.Usage = usage
	if err := f.fs.Parse(f.args); err != nil || f.fs.NArg() == 0 {
		return nil
	}
	return f.fs.Args()
}

// ui is pprof's console: messages go to out, there is no interactive
// prompt, and no browser is wanted.
type ui struct{ out io.Writer }

func (u *ui) ReadLine(string) (string, error)     { return "", io.EOF }
func (u *ui) Print(a ...any)                      { u.println(a...) }
func (u *ui) PrintErr(a ...any)                   { u.println(a...) }
func (u *ui) IsTerminal() bool                    { return false }
func (u *ui) WantBrowser() bool                   { return false }
func (u *ui) SetAutoComplete(func(string) string) {}

func (u *ui) println(a ...any) {
	s := fmt.Sprint(a...)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	_, _ = io.WriteString(u.out, s)
}
