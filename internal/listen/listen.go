// Package listen gives a supervisor two ways to keep a child's port across
// the child's restarts, where picking a free port and letting the child bind
// it later is a race another process can win:
//
//   - Inherit: the supervisor listens itself and hands the socket to each
//     child process as a file descriptor; the child's address is fd/N (the
//     syntax Caddy uses for socket activation) and Listen accepts it. While
//     no child runs, connections wait in the kernel's accept queue: right for
//     an edge listener, whose clients have nowhere else to go.
//   - Reserve: the supervisor holds the port bound but not listening; the
//     child listens on host:port as usual. While no child runs, connections
//     are refused: right behind a balancer, which then retries elsewhere.
//
// Written by hand because each is a few system calls: coreos/go-systemd's
// activation package needs LISTEN_PID set after fork, which os/exec cannot do.
package listen

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// fdPrefix starts an inherited-socket address.
const fdPrefix = "fd/"

// Check reports whether addr is a valid listen address: host:port, or fd/N
// with N >= 3 (0-2 are stdin, stdout and stderr).
func Check(addr string) error {
	if strings.HasPrefix(addr, fdPrefix) {
		_, err := parseFD(addr)
		return err
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("want host:port or fd/N, got %q", addr)
	}
	return nil
}

func parseFD(addr string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(addr, fdPrefix))
	if err != nil || n < 3 {
		return 0, fmt.Errorf("%q: want fd/N with N >= 3 (an inherited listening socket)", addr)
	}
	return n, nil
}

// Listen returns a TCP listener on addr. For fd/N the listener owns a
// duplicate of N and N itself is closed, so the process holds the socket
// once; the parent's copy keeps it open across the child's restarts.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	if !strings.HasPrefix(addr, fdPrefix) {
		var lc net.ListenConfig
		return lc.Listen(ctx, "tcp", addr)
	}
	fd, err := parseFD(addr)
	if err != nil {
		return nil, err
	}
	// Check before wrapping: net.FileListener accepts any stream socket,
	// and Accept on a socket that is not listening fails only later.
	accepting, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("%s: not an inherited socket (was the process started by wardgate up or a socket manager?): %w", addr, err)
	}
	if accepting != 1 {
		return nil, fmt.Errorf("%s: the inherited socket is not listening", addr)
	}
	f := os.NewFile(uintptr(fd), addr)
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	if _, ok := ln.(*net.TCPListener); !ok {
		ln.Close()
		return nil, fmt.Errorf("%s: the inherited socket is %s, want TCP", addr, ln.Addr().Network())
	}
	return ln, nil
}

// File returns a copy of ln's socket to pass to a child process
// (exec.Cmd.ExtraFiles). The copy shares the socket: closing either leaves
// the other listening.
func File(ln net.Listener) (*os.File, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("listener on %s is not TCP", ln.Addr())
	}
	f, err := tl.File()
	if err != nil {
		return nil, fmt.Errorf("listener on %s: %w", ln.Addr(), err)
	}
	return f, nil
}

// Reservation holds a loopback port bound but not listening. Linux never
// gives a bound port to another socket that asks for port 0 or to an
// outgoing connection, and with SO_REUSEADDR on both sides (Go sets it on
// every TCP listener) it lets a listener bind the port meanwhile. A process
// that binds the very port number on purpose while no listener is up can
// still take it.
type Reservation struct {
	fd   int
	addr string
}

// Reserve binds a free port on the IPv4 address host (e.g. 127.0.0.1).
func Reserve(host string) (*Reservation, error) {
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return nil, fmt.Errorf("reserve a port: %q is not an IPv4 address", host)
	}
	// Close-on-exec set under ForkLock, as package net does where
	// SOCK_CLOEXEC is missing: the children must not inherit it.
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("reserve a port: %w", err)
	}
	sa := &unix.SockaddrInet4{}
	copy(sa.Addr[:], ip)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("reserve a port: SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("reserve a port on %s: %w", host, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("reserve a port: %w", err)
	}
	port := got.(*unix.SockaddrInet4).Port
	return &Reservation{fd: fd, addr: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// Addr is the reserved host:port, for the child to listen on.
func (r *Reservation) Addr() string { return r.addr }

// Close releases the port.
func (r *Reservation) Close() error { return unix.Close(r.fd) }
