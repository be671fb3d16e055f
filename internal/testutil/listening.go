package testutil

import (
	"bufio"
	"os/exec"
	"testing"
	"time"
)

// Proc is a child started by StartListening.
type Proc struct {
	Cmd    *exec.Cmd
	Stderr *SyncBuffer   // everything the child wrote to stderr
	Exited chan struct{} // closed once Wait has returned
	Err    error         // Wait's result; read only after Exited is closed

	// Public and Admin are the http:// base URLs of its listening line.
	Public, Admin string
}

// StartListening starts cmd (which must not have Stdout or Stderr set),
// and waits up to timeout for its first stdout line, the
// "listening public=... admin=..." line of `wardgate jobqueue`; it fails
// t, with the child's stderr, if the child exits first, prints something
// else or stays silent. Later stdout lines are discarded. The child is
// killed at t's cleanup unless it has exited by then.
func StartListening(t testing.TB, cmd *exec.Cmd, timeout time.Duration) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, Stderr: &SyncBuffer{}, Exited: make(chan struct{})}
	cmd.Stderr = p.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.Exited:
		default:
			_ = cmd.Process.Kill()
			<-p.Exited
		}
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case first <- sc.Text():
			default:
			}
		}
		p.Err = cmd.Wait()
		close(p.Exited)
	}()
	var line string
	select {
	case line = <-first:
	case <-p.Exited:
		// A line sent before the exit still counts.
		select {
		case line = <-first:
		default:
			t.Fatalf("exited before listening: %v\n%s", p.Err, p.Stderr)
		}
	case <-time.After(timeout):
		t.Fatalf("no listening line within %s; stderr:\n%s", timeout, p.Stderr)
	}
	if p.Public, p.Admin, err = ParseListening(line); err != nil {
		t.Fatalf("first stdout line %q; stderr:\n%s", line, p.Stderr)
	}
	return p
}
