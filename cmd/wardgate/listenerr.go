package main

import (
	"errors"
	"fmt"
	"syscall"
)

// listenError is a listen address that cannot be bound, with the flag (or
// variable) that sets it, so the message says what to change. Commands
// print it as one line instead of a log record: nothing has started yet.
type listenError struct {
	setting string // "--listen", "--admin", "--listen / LISTEN"
	addr    string
	err     error
}

func (e *listenError) Error() string {
	hint := "choose another address with " + e.setting
	switch {
	case errors.Is(e.err, syscall.EADDRINUSE):
		return fmt.Sprintf("%s %s: address already in use by another process: %s (port 0 picks a free one)", e.setting, e.addr, hint)
	case errors.Is(e.err, syscall.EACCES):
		return fmt.Sprintf("%s %s: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE): %s", e.setting, e.addr, hint)
	case errors.Is(e.err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("%s %s: not an address of this machine: %s (e.g. 127.0.0.1:PORT)", e.setting, e.addr, hint)
	}
	return fmt.Sprintf("%s %s: %v", e.setting, e.addr, e.err)
}

func (e *listenError) Unwrap() error { return e.err }
