package listen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

// TestMain doubles as the child process: with LISTEN_TEST_ADDR set it
// serves "hello from PID" on that address until killed.
func TestMain(m *testing.M) {
	if addr := os.Getenv("LISTEN_TEST_ADDR"); addr != "" {
		ln, err := Listen(context.Background(), addr)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println("listening", ln.Addr())
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "hello from %d", os.Getpid())
		}))
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// child starts the test binary serving addr with files inherited as fd 3...
// and returns it once it printed its first line.
func child(t *testing.T, addr string, files ...*os.File) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LISTEN_TEST_ADDR="+addr)
	cmd.ExtraFiles = files
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

// get GETs url on a fresh connection: 0 and the error text when it fails.
func get(url string) (int, string) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return testutil.Get(context.Background(), c, url)
}

// The property wardgate up relies on: a child restarted on the inherited
// socket serves the same port, and a connection made while no child runs
// is not refused but served by the next child.
func TestInheritedSocketOutlivesChild(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := File(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	url := "http://" + ln.Addr().String() + "/"

	first, line := child(t, "fd/3", f)
	if line != "listening "+ln.Addr().String() {
		t.Fatalf("child printed %q, want the inherited address %s", line, ln.Addr())
	}
	if code, body := get(url); code != http.StatusOK || body != fmt.Sprintf("hello from %d", first.Process.Pid) {
		t.Fatalf("first child: %d %q", code, body)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	// No child now: the request must wait, not fail.
	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		code, body := get(url)
		done <- result{code, body}
	}()
	select {
	case r := <-done:
		t.Fatalf("request with no child running ended before a child started: %d %q", r.code, r.body)
	case <-time.After(200 * time.Millisecond):
	}
	second, _ := child(t, "fd/3", f)
	r := <-done
	if want := fmt.Sprintf("hello from %d", second.Process.Pid); r.code != http.StatusOK || r.body != want {
		t.Fatalf("request made between children: %d %q; want %q", r.code, r.body, want)
	}
}

func TestListenRejectsWhatIsNotAListeningTCPSocket(t *testing.T) {
	file, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	unbound, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(unbound)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpFile, err := udp.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer udpFile.Close()

	for _, tc := range []struct{ addr, want string }{
		{"fd/x", "want fd/N"},
		{"fd/2", "want fd/N with N >= 3"},
		{"fd/9999", "not an inherited socket"},
		{fmt.Sprintf("fd/%d", file.Fd()), "not an inherited socket"},
		{fmt.Sprintf("fd/%d", unbound), "not listening"},
		{fmt.Sprintf("fd/%d", udpFile.Fd()), "not listening"},
	} {
		ln, err := Listen(context.Background(), tc.addr)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", tc.addr)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Listen(%q) = %v, want it to say %q", tc.addr, err, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:0": true, ":9000": true, "fd/3": true, "fd/12": true,
		"8080": false, "fd/": false, "fd/1": false, "fd/-4": false, "localhost": false, "": false,
	} {
		if err := Check(addr); (err == nil) != ok {
			t.Errorf("Check(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func ExampleListen() {
	// A server started with its socket as fd 3 (by wardgate up, or systemd
	// with a matching unit) and the same binary run by hand on a port both
	// reach their listener through one call:
	for _, addr := range []string{"127.0.0.1:0"} { // or "fd/3"
		ln, err := Listen(context.Background(), addr)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(ln.Addr().Network())
		ln.Close()
	}
	// Output: tcp
}

// The property wardgate up relies on for its job queues: the reserved port
// is the child's to listen on, refuses while no child listens, and is never
// handed to anyone asking for a free port.
func TestReservation(t *testing.T) {
	var rs []*Reservation
	reserved := map[string]bool{}
	for range 50 {
		r, err := Reserve("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rs = append(rs, r)
		reserved[r.Addr()] = true
	}
	addr := rs[0].Addr()
	for round := range 2 { // a child, then its restart
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("round %d: a child cannot listen on its reserved port: %v", round, err)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("round %d: dial the child: %v", round, err)
		}
		c.Close()
		ln.Close()
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Fatalf("round %d: %s accepts a connection with no child listening", round, addr)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("round %d: dial with no child: %v, want connection refused", round, err)
		}
	}
	// 2000 free-port requests would land on one of 50 reserved ports ~7
	// times if the kernel did not honour the reservation.
	for range 2000 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().String()
		ln.Close()
		if reserved[got] {
			t.Fatalf("a request for a free port got reserved %s", got)
		}
	}
	if _, err := Reserve("::1"); err == nil {
		t.Error("Reserve(::1) succeeded: only IPv4 is supported, it must say so")
	}
}
