package telemetry

import (
	"context"
	"net"
	"runtime/pprof"
)

// DialFunc is the signature of net/http.Transport.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// UnlabeledDial wraps dial for an http.Transport so that the connections
// it opens do not carry the pprof labels of the request that caused the
// dial.
//
// Why: a goroutine inherits the labels of the goroutine that starts it.
// net/http.Transport dials in a goroutine it starts from the request's
// goroutine (labelled with that request's trace_id, span_id and route by
// [DoWithSpanLabels]), and that dialing goroutine starts the connection's
// persistConn readLoop and writeLoop. Those live as long as the keep-alive
// connection does, minutes after the request ended, and goroutine profiles
// and `diag analyze` would show them under a trace that finished long ago.
//
// The wrapper clears the labels of the goroutine it runs in before
// dialing, so the connection goroutines started after it return are
// label-free. That is only correct because net/http always calls
// DialContext from a goroutine of its own (Transport.startDialConnForLocked),
// never from the caller's: do not use it for a dialer that some code calls
// on a request's own goroutine, whose labels it would wipe.
func UnlabeledDial(dial DialFunc) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		pprof.SetGoroutineLabels(context.Background())
		return dial(ctx, network, addr)
	}
}
