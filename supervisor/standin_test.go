package supervisor

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

func TestStandInAnswersWhileStartedAndHandsBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String() + "/v1/payloads"
	si, err := NewStandIn(ln, "gateway", nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}

	for round := range 2 { // a crash loop starts it more than once
		si.Start(3 * time.Second)
		// A POST with a body the stand-in must read past before answering.
		resp, err := client.Post(url, "application/json", bytes.NewReader(bytes.Repeat([]byte("x"), 256<<10)))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" ||
			!strings.Contains(string(body), `"error":"gateway restarting"`) || !resp.Close {
			t.Fatalf("round %d: %d Retry-After %q close %v %s; want 503, Retry-After 3, Connection: close and the reason",
				round, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close, body)
		}
		si.Stop()

		// Stopped: the next connection waits for the child (here, this
		// goroutine accepting on the same socket) instead of the stand-in.
		child := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				child <- err
				return
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				_, _ = io.WriteString(w, "child")
			})}
			child <- srv.Serve(&oneConn{c: c})
		}()
		code, got := testutil.Get(context.Background(), client, url)
		if code != http.StatusOK || got != "child" {
			t.Fatalf("round %d after Stop: %d %q, want the child's 200", round, code, got)
		}
	}
	si.Stop() // stopping a stopped stand-in is a no-op
}

// oneConn is a listener that yields c once.
type oneConn struct {
	c    net.Conn
	done bool
}

func (o *oneConn) Accept() (net.Conn, error) {
	if o.done {
		return nil, net.ErrClosed
	}
	o.done = true
	return o.c, nil
}
func (o *oneConn) Close() error   { return nil }
func (o *oneConn) Addr() net.Addr { return o.c.LocalAddr() }
