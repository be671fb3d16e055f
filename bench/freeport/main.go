// Command freeport prints N free loopback TCP ports, one a line, for the
// benchmark scripts that must write a port into a peer's config file
// (nginx, HAProxy, Caddy cannot report a port 0 back). All N are held open
// together before any is released, so they are distinct.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
)

func main() {
	fs := flag.NewFlagSet("freeport", flag.ContinueOnError)
	n := fs.Int("n", 1, "how many ports")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	var lns []net.Listener
	for i := 0; i < *n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "freeport:", err)
			os.Exit(1)
		}
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
}
