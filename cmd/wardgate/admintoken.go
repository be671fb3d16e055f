package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/wardgate/wardgate/telemetry"
)

// adminTokenFlags are the ways a diag command that reads /debug/pprof/
// gets the admin token: typed (--token, $ADMIN_TOKEN) or, under `wardgate
// up`, found in the token file up writes per run (DATA/run/admin-token),
// so that nobody has to copy it by hand.
type adminTokenFlags struct {
	token, data *string
}

func addAdminTokenFlags(fset *flag.FlagSet) *adminTokenFlags {
	return &adminTokenFlags{
		token: fset.String("token", tokenDefault(), "admin bearer token (default $ADMIN_TOKEN; under wardgate up it is found without it, see --data)"),
		data:  fset.String("data", "", "`DIR` of the wardgate up that runs the target: the admin token is read from DIR/run/admin-token\n(default: from --pid-file's DATA, $"+telemetry.AdminTokenFileEnv+", or ./data when the target is on loopback)"),
	}
}

// resolve returns the token to send to target, in this order: --token or
// $ADMIN_TOKEN; --data DIR; the DATA of pidFile (DATA/run/<service>/pid);
// the file named by $WARDGATE_ADMIN_TOKEN_FILE; ./data/run/admin-token
// for a loopback target. "" means none (the listener may want none). A
// file named explicitly (--data) that cannot be read is an error; the
// guesses are not.
func (f *adminTokenFlags) resolve(target, pidFile string) (string, error) {
	if *f.token != "" {
		return *f.token, nil
	}
	if *f.data != "" {
		tok, err := telemetry.ReadAdminToken(filepath.Join(*f.data, telemetry.AdminTokenFile))
		if err != nil {
			return "", fmt.Errorf("--data: %w", err)
		}
		return tok, nil
	}
	var guesses []string
	if pidFile != "" {
		// DATA/run/<service>/pid -> DATA/run/admin-token
		guesses = append(guesses, filepath.Join(filepath.Dir(filepath.Dir(pidFile)), filepath.Base(telemetry.AdminTokenFile)))
	}
	if p := os.Getenv(telemetry.AdminTokenFileEnv); p != "" {
		guesses = append(guesses, p)
	}
	// The default --data of `wardgate up` is ./data; its token goes only
	// to a process on this machine.
	if loopbackTarget(target) {
		guesses = append(guesses, filepath.Join("data", telemetry.AdminTokenFile))
	}
	for _, p := range guesses {
		tok, err := telemetry.ReadAdminToken(p)
		if err == nil {
			return tok, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", nil
}

// loopbackTarget reports whether an admin URL (or host:port) names this
// machine's loopback interface.
func loopbackTarget(target string) bool {
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
