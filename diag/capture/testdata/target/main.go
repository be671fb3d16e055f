// Command target is the process the capture tests dump: many goroutines
// parked in one named function under pprof labels, some heap, and a
// stdin/stdout ping so the test can check it still runs after a capture.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
)

// sink keeps the heap alive.
var sink [][]byte

// The -writer-mb goroutine's state. It fills guardA, then big, then
// guardB with the pass number n, in that order and front to back, then
// stores n in sequence. So at any instant, with s = sequence, the words of
// guardA, big and guardB taken in that order are all s+1 up to some point
// and s after it: a core that mixes pages copied at different moments
// breaks this (see TestCaptureNativePreCopyConsistent).
var (
	guardA, guardB [1024]uint64
	big            []uint64
	sequence       atomic.Uint64
)

// writeLoop rewrites the writer's state forever.
//
//go:noinline
func writeLoop(started *sync.WaitGroup) {
	started.Done()
	for n := uint64(1); ; n++ {
		for i := range guardA {
			guardA[i] = n
		}
		for i := range big {
			big[i] = n
		}
		for i := range guardB {
			guardB[i] = n
		}
		sequence.Store(n)
	}
}

//go:noinline
func parkedInCaptureTarget(ctx context.Context, started *sync.WaitGroup, release <-chan struct{}) {
	started.Done()
	<-release
}

// busyLoop allocates and computes forever, so a capture catches running
// goroutines, not only parked ones.
//
//go:noinline
func busyLoop(seed int, started *sync.WaitGroup) {
	started.Done()
	x := seed
	for {
		b := make([]byte, 512+uint(x)%4096)
		for i := range b {
			x = x*1103515245 + 12345 + int(b[i])
			b[i] = byte(x)
		}
	}
}

func main() {
	goroutines := flag.Int("goroutines", 1000, "goroutines to park in parkedInCaptureTarget")
	heapMB := flag.Int("heap-mb", 4, "heap to allocate and touch, in MiB")
	traceID := flag.String("trace-id", "4bf92f3577b34da6a3ce929d0e0e4736", "trace_id pprof label of the parked goroutines")
	busy := flag.Int("busy", 0, "goroutines to run busyLoop")
	writerMB := flag.Int("writer-mb", 0, "if > 0, a goroutine keeps rewriting a buffer of this many MiB (writeLoop)")
	flag.Parse()

	for i := 0; i < *heapMB; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(i + j)
		}
		sink = append(sink, b)
	}

	var started sync.WaitGroup
	release := make(chan struct{})
	started.Add(*goroutines)
	for i := 0; i < *goroutines; i++ {
		go pprof.Do(context.Background(), pprof.Labels("trace_id", *traceID, "worker", "parked"), func(ctx context.Context) {
			parkedInCaptureTarget(ctx, &started, release)
		})
	}
	started.Wait()
	started.Add(*busy)
	for i := 0; i < *busy; i++ {
		go busyLoop(i, &started)
	}
	started.Wait()
	if *writerMB > 0 {
		big = make([]uint64, *writerMB<<20/8)
		started.Add(1)
		go writeLoop(&started)
		started.Wait()
		for sequence.Load() < 2 { // a full pass done: guard arrays hold data
			runtime.Gosched()
		}
	}
	fmt.Printf("ready pid=%d\n", os.Getpid())

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "ping":
			fmt.Printf("pong heap=%d\n", len(sink))
		case "quit":
			close(release)
			return
		}
	}
}
