package stack

import (
	"context"
	"net"
	"os"

	"github.com/wardgate/wardgate/internal/listen"
)

// heldSockets keeps every child's ports for up's whole life, so a restarted
// child gets the same ones and no other process can take one in between (as
// it could when up picked a free port and let the child bind it later).
//
//   - The gateway's sockets are bound and listening in up and passed to every
//     gateway process as fd/3, fd/4 (internal/listen): a client connecting
//     while the gateway restarts waits in the accept queue, not refused;
//     the gateway is the edge, its clients have nowhere else to go.
//   - A job queue's ports are reserved (bound, not listening) and the job
//     queue listens on them itself: while it is down, connections are
//     refused, so the gateway retries them on another job queue at once.
type heldSockets struct {
	lns      []net.Listener
	files    []*os.File
	reserved []*listen.Reservation
}

// reserve holds a free loopback port and returns its host:port.
func (h *heldSockets) reserve() (string, error) { return h.reserveOn("127.0.0.1") }

// reserveOn holds a free port on the IPv4 address host.
func (h *heldSockets) reserveOn(host string) (string, error) {
	r, err := listen.Reserve(host)
	if err != nil {
		return "", err
	}
	h.reserved = append(h.reserved, r)
	return r.Addr(), nil
}

// bind listens on addr and returns up's listener (its Addr is the port
// picked when addr's is 0) and a copy of the socket to pass to a child.
func (h *heldSockets) bind(ctx context.Context, addr string) (net.Listener, *os.File, error) {
	ln, err := listen.Listen(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	f, err := listen.File(ln)
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	h.lns, h.files = append(h.lns, ln), append(h.files, f)
	return ln, f, nil
}

// Close closes up's copies and reservations; children keep their own
// sockets until they stop.
func (h *heldSockets) Close() {
	for i := range h.lns {
		_ = h.lns[i].Close()
		_ = h.files[i].Close()
	}
	for _, r := range h.reserved {
		_ = r.Close()
	}
	h.lns, h.files, h.reserved = nil, nil, nil
}
