// Command crasher is the test subject of the analyze tests: it dies in a
// chosen way so that the test has a real core to analyze.
//
//	crasher -mode deadlock           all goroutines asleep: fatal error
//	crasher -mode leak -n N          N goroutines blocked in leakyWorker, prints
//	                                 "ready" and waits for the test's SIGQUIT
//	crasher -mode panic              processJob panics in a labelled worker
//
// Run it with GOTRACEBACK=crash and RLIMIT_CORE raised to get a core.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"time"
)

// Job is what the panic mode's workers process.
type Job struct {
	ID      int
	Payload map[string]int
}

func main() {
	mode := flag.String("mode", "", "deadlock | leak | panic")
	n := flag.Int("n", 1000, "goroutines to leak (leak mode)")
	crashOut := flag.String("crash-output", "", "file for debug.SetCrashOutput")
	flag.Parse()
	if *crashOut != "" {
		f, err := os.Create(*crashOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := debug.SetCrashOutput(f, debug.CrashOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		f.Close()
	}
	switch *mode {
	case "deadlock":
		deadlock()
	case "leak":
		leak(*n)
	case "panic":
		panicInWorker()
	default:
		fmt.Fprintln(os.Stderr, "crasher: -mode deadlock|leak|panic")
		os.Exit(2)
	}
}

func deadlock() {
	results := make(chan int)
	var mu sync.Mutex
	mu.Lock()
	go func() {
		mu.Lock() // never unlocked: this goroutine sleeps forever too
		results <- 1
	}()
	fmt.Println("result:", waitForResult(results, 2))
}

//go:noinline
func waitForResult(results chan int, want int) int {
	got := 0
	for got < want {
		got += <-results
	}
	return got
}

func leak(n int) {
	block := make(chan struct{}) // never closed: the leak
	var started sync.WaitGroup
	started.Add(n)
	for i := range n {
		traceID := fmt.Sprintf("%032x", i%8+1)
		go pprof.Do(context.Background(), pprof.Labels("trace_id", traceID), func(context.Context) {
			leakyWorker(i, block, &started)
		})
	}
	started.Wait()
	// A GC scan stamps every blocked goroutine's waitsince (the runtime
	// does it nowhere else) with the previous GC's time, so two GCs: the
	// first sets that time, the second stamps. Then wait a little so the
	// waits are measurable.
	runtime.GC()
	runtime.GC()
	time.Sleep(300 * time.Millisecond)
	// A core holds no clock reading; the analysis takes "now" from the
	// runtime's own timestamps, and an idle process may have none newer
	// than the GC above. A third GC makes "now" at least 300 ms later.
	runtime.GC()
	fmt.Println("ready")
	time.Sleep(time.Hour) // a sleeping main keeps the deadlock detector quiet
}

//go:noinline
func leakyWorker(id int, block chan struct{}, started *sync.WaitGroup) {
	started.Done()
	<-block
	fmt.Println("never", id)
}

func panicInWorker() {
	jobs := make(chan Job)
	idle := make(chan struct{})
	var started sync.WaitGroup
	started.Add(50)
	for range 50 {
		go idleWorker(idle, &started)
	}
	started.Wait()
	go pprof.Do(context.Background(), pprof.Labels("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"), func(ctx context.Context) {
		for j := range jobs {
			processJob(ctx, j)
		}
	})
	jobs <- Job{ID: 42, Payload: map[string]int{"size": -1}}
	time.Sleep(time.Hour)
}

//go:noinline
func idleWorker(idle chan struct{}, started *sync.WaitGroup) {
	started.Done()
	<-idle
}

//go:noinline
func processJob(ctx context.Context, job Job) {
	size := job.Payload["size"]
	if size < 0 {
		panic(fmt.Sprintf("job %d: negative size %d", job.ID, size))
	}
	_ = ctx
}
