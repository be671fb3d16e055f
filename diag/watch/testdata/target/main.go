// Command target is the process the watch tests observe: it serves the
// real wardgate admin handler (/metrics, /debug/pprof/*) on a loopback
// port, prints "admin=URL", and then misbehaves on demand: parked
// goroutines carrying a trace_id label, retained heap, a spinning CPU.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/wardgate/wardgate/telemetry"
)

//go:noinline
func stuckHandler(ch <-chan struct{}) { <-ch }

//go:noinline
func hoard(mb int) [][]byte {
	out := make([][]byte, mb)
	for i := range out {
		out[i] = make([]byte, 1<<20)
		for j := 0; j < len(out[i]); j += 4096 {
			out[i][j] = 1
		}
	}
	return out
}

//go:noinline
func burn() {
	x := 0
	for {
		for i := 0; i < 1000000; i++ {
			x += i ^ (x >> 1)
		}
		if x == 42 {
			fmt.Println(x)
		}
	}
}

func main() {
	goroutines := flag.Int("goroutines", 0, "parked goroutines labeled trace_id=stuck-trace")
	heapMB := flag.Int("heap-mb", 0, "MB of heap to retain")
	spin := flag.Bool("spin", false, "burn one core")
	token := flag.String("token", "", "admin token")
	flag.Parse()

	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "watch-target")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ch := make(chan struct{})
	for i := 0; i < *goroutines; i++ {
		go pprof.Do(ctx, pprof.Labels("trace_id", "stuck-trace"), func(context.Context) { stuckHandler(ch) })
	}
	kept := hoard(*heapMB)
	runtime.GC()
	if *spin {
		go burn()
	}
	fmt.Printf("admin=http://%s\n", l.Addr())
	err = http.Serve(l, tel.AdminHandler(*token, nil))
	runtime.KeepAlive(kept)
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
