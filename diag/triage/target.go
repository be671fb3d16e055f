package triage

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gpprof "github.com/google/pprof/profile"

	"github.com/wardgate/wardgate/diag/profile"
)

// ErrTarget marks errors about the target itself (not found, not
// reachable, no admin listener): the command's exit code 2.
var ErrTarget = errors.New("target")

// socketInodes are the inodes of pid's socket file descriptors, which
// /proc/PID/net/tcp{,6} name.
func socketInodes(pid int) (map[string]bool, error) {
	inodes := map[string]bool{}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	return inodes, nil
}

// tcpSocket is one line of /proc/PID/net/tcp{,6} that belongs to pid.
type tcpSocket struct {
	state         string // "0A" listening, "01" established
	local, remote string // hex "0100007F:1F90"
}

// tcpSockets are pid's TCP sockets: its socket fds matched, by inode, to
// the kernel's tables.
func tcpSockets(pid int) ([]tcpSocket, error) {
	inodes, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	var out []tcpSocket
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local rem st tx:rx tr:tm retr uid timeout inode
			if len(fields) >= 10 && inodes[fields[9]] {
				out = append(out, tcpSocket{state: fields[3], local: fields[1], remote: fields[2]})
			}
		}
		fh.Close()
	}
	return out, nil
}

// hexPort is the port of a /proc/net/tcp address ("0100007F:1F90").
func hexPort(addr string) (int, bool) {
	_, p, ok := strings.Cut(addr, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	return int(port), ok && err == nil
}

// listeningPorts returns the TCP ports pid listens on.
func listeningPorts(pid int) ([]int, error) {
	socks, err := tcpSockets(pid)
	if err != nil {
		return nil, fmt.Errorf("%w: process %d: %w", ErrTarget, pid, err)
	}
	var ports []int
	for _, s := range socks {
		if p, ok := hexPort(s.local); ok && s.state == "0A" {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// FindAdmin returns the admin URL of process pid: the first of its
// listening ports that serves /debug/pprof/ on loopback.
func FindAdmin(ctx context.Context, pid int, token string) (string, error) {
	ports, err := listeningPorts(pid)
	if err != nil {
		return "", err
	}
	client := &http.Client{Timeout: 3 * time.Second}
	var tried []string
	for _, p := range ports {
		u := fmt.Sprintf("http://127.0.0.1:%d", p)
		tried = append(tried, strconv.Itoa(p))
		// A 401 is an admin listener too: the fetches that follow say
		// which token is missing.
		if _, err := profile.Get(ctx, client, u+"/debug/pprof/cmdline", token); err == nil || errors.Is(err, profile.ErrUnauthorized) {
			return u, nil
		}
	}
	if len(tried) == 0 {
		return "", fmt.Errorf("%w: process %d listens on no TCP port: give its admin URL with --target", ErrTarget, pid)
	}
	return "", fmt.Errorf("%w: none of process %d's listening ports (%s) serves /debug/pprof/ on 127.0.0.1: give its admin URL with --target", ErrTarget, pid, strings.Join(tried, ", "))
}

// pidOfPort finds the local process listening on port (0 if none is
// visible to us).
func pidOfPort(port int) int {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		ports, err := listeningPorts(pid)
		if err != nil {
			continue
		}
		for _, x := range ports {
			if x == port {
				return pid
			}
		}
	}
	return 0
}

// mainModule is the main module path of pid's executable ("" if unknown).
func mainModule(pid int) string {
	if pid <= 0 {
		return ""
	}
	bi, err := buildinfo.ReadFile(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	return bi.Main.Path
}

// MainModule is the main module of the Go program behind a local admin
// URL: from the executable of the process listening on its port, else
// from the executable path a profile of it records (when that file is
// here). "" when neither can be read (a remote target): the findings then
// take every frame outside the standard library and well-known libraries
// for application code.
func MainModule(target string, p *gpprof.Profile) string {
	if u, err := profile.NormalizeTarget(target); err == nil {
		if m := mainModule(localPID(u)); m != "" {
			return m
		}
	}
	if p != nil && len(p.Mapping) > 0 && p.Mapping[0].File != "" {
		if bi, err := buildinfo.ReadFile(p.Mapping[0].File); err == nil {
			return bi.Main.Path
		}
	}
	return ""
}

// outboundPeers lists the remote addresses of pid's established TCP
// connections that it dialed (its local port is not one it listens on),
// with how many connections go to each: where a hung call may be waiting.
func outboundPeers(pid int) map[string]int {
	socks, err := tcpSockets(pid)
	if err != nil {
		return nil
	}
	listening := map[int]bool{}
	for _, s := range socks {
		if p, ok := hexPort(s.local); ok && s.state == "0A" {
			listening[p] = true
		}
	}
	peers := map[string]int{}
	for _, s := range socks {
		p, ok := hexPort(s.local)
		if !ok || s.state != "01" || listening[p] { // 01: ESTABLISHED
			continue
		}
		if a := hexAddr(s.remote); a != "" {
			peers[a]++
		}
	}
	return peers
}

// hexAddr decodes /proc/net/tcp's "0100007F:1F90" (IPv4) or the 32-digit
// IPv6 form into host:port.
func hexAddr(s string) string {
	h, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil {
		return ""
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return ""
	}
	// Each 32-bit word is in host (little-endian) order.
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.JoinHostPort(net.IP(b).String(), strconv.FormatUint(port, 10))
}
