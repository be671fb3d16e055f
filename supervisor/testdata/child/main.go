// Command child is the process the supervisor tests supervise. Its first
// argument picks a behaviour:
//
//	serve        listen on $LISTEN, print "listening addr=...", serve /healthz, exit 0 on SIGTERM
//	env          print the crash environment, cwd and RLIMIT_CORE, then serve
//	ignore-term  serve, but ignore SIGTERM (only SIGKILL stops it)
//	stuck-once   the first time: write a fatal-error header to the crash output and hang; later: serve
//	panic-labels panic inside a goroutine carrying pprof labels
//	fail         print "bad config: FOO" on stderr and exit 3
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

func main() {
	if p := os.Getenv("WARDGATE_CRASH_OUTPUT"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := debug.SetCrashOutput(f, debug.CrashOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		f.Close()
	}
	mode := "serve"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "serve":
		serve(false)
	case "env":
		var lim syscall.Rlimit
		_ = syscall.Getrlimit(syscall.RLIMIT_CORE, &lim)
		wd, _ := os.Getwd()
		fmt.Printf("env GOTRACEBACK=%s\n", os.Getenv("GOTRACEBACK"))
		fmt.Printf("env GODEBUG=%s\n", os.Getenv("GODEBUG"))
		fmt.Printf("env WARDGATE_CRASH_OUTPUT=%s\n", os.Getenv("WARDGATE_CRASH_OUTPUT"))
		fmt.Printf("env cwd=%s\n", wd)
		fmt.Printf("env rlimit_core=%d\n", lim.Cur)
		serve(false)
	case "ignore-term":
		serve(true)
	case "stuck-once":
		if _, err := os.Stat("stuck-marker"); err != nil {
			_ = os.WriteFile("stuck-marker", nil, 0o600)
			f, err := os.OpenFile(os.Getenv("WARDGATE_CRASH_OUTPUT"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Fprintln(f, "fatal error: simulated crash that never finishes")
			f.Close()
			fmt.Println("listening addr=stuck")
			select {}
		}
		serve(false)
	case "panic-labels":
		// Not pprof.Do: its deferred label restore runs before a panic's
		// traceback is printed, so the labels would already be gone.
		go func() {
			pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")))
			panic("boom with labels")
		}()
		// Block until the panic kills the process. (A deferred close of a
		// channel here let main return, and exit 0, while the panic was
		// still being printed on a loaded machine.)
		select {}
	case "fail":
		fmt.Fprintln(os.Stderr, "bad config: FOO")
		os.Exit(3)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(2)
	}
}

func serve(ignoreTerm bool) {
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	if ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sigs, syscall.SIGTERM)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	go http.Serve(ln, mux)
	fmt.Printf("listening addr=%s\n", ln.Addr())
	<-sigs
	fmt.Println("stopping on SIGTERM")
	os.Exit(0)
}
