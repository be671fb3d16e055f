package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
	"time"
)

// StartGateway starts cmd, a `wardgate gateway` (which must not have
// Stdout or Stderr set), and waits up to timeout for its JSON log line
// "gateway listening", whose listen and admin addresses become Public and
// Admin. Every stderr line but the access log's (one per request, too many
// to keep under load) goes to Stderr. The gateway is stopped with
// SIGTERM (killed 15s later) at t's cleanup unless it has exited.
func StartGateway(t testing.TB, cmd *exec.Cmd, timeout time.Duration) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, Stderr: &SyncBuffer{}, Exited: make(chan struct{})}
	errPipe, err := cmd.StderrPipe()
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
			if err := Terminate(cmd.Process, p.Exited, 15*time.Second); err != nil {
				t.Errorf("gateway: %v", err)
			}
		}
	})
	type addrs struct{ public, admin string }
	ready := make(chan addrs, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if bytes.Contains(sc.Bytes(), []byte(`"msg":"http request"`)) {
				continue
			}
			_, _ = p.Stderr.Write(append(sc.Bytes(), '\n'))
			var m struct{ Msg, Listen, Admin string }
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "gateway listening" {
				select {
				case ready <- addrs{"http://" + m.Listen, "http://" + m.Admin}:
				default:
				}
			}
		}
		p.Err = cmd.Wait()
		close(p.Exited)
	}()
	select {
	case a := <-ready:
		p.Public, p.Admin = a.public, a.admin
	case <-p.Exited:
		t.Fatalf("gateway exited before listening: %v\n%s", p.Err, p.Stderr)
	case <-time.After(timeout):
		t.Fatalf("gateway: no \"gateway listening\" line within %s; stderr:\n%s", timeout, p.Stderr)
	}
	return p
}
