package testutil

import (
	"net"
	"strconv"
	"testing"
)

// FreeAddr returns "127.0.0.1:PORT" for a loopback port nothing listened on
// a moment ago. It is for programs that must be given an address (a flag, a
// config file) rather than bind port 0 themselves; another process can
// take the port in between, which on loopback in a test is rare enough. It
// also serves as an address nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort is FreeAddr's port number.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
