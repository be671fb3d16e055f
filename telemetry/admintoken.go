package telemetry

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// AdminTokenFileEnv names the file holding the token that /debug/pprof/
// on the admin listener requires. `wardgate up` generates one per run
// (GenerateAdminToken) and passes its path to every child in this
// variable; the path rather than the token, so that the token is not in
// the children's environment (/proc/PID/environ, capture bundles).
const AdminTokenFileEnv = "WARDGATE_ADMIN_TOKEN_FILE"

// AdminTokenFile is where `wardgate up` keeps the token, relative to its
// data directory: DATA/run/admin-token, next to the DATA/run/<service>/
// directories that hold the pid files, so that diag commands find it from
// --data DIR or --pid-file DATA/run/<service>/pid.
const AdminTokenFile = "run/admin-token"

// Why pprof and not /metrics or /healthz: pprof hands out the command line,
// heap contents and goroutine stacks (request data, secrets in memory), and
// CPU profiles cost the process; any local user can reach a loopback port.
// Metrics and health are what scrapers and probes need without a secret,
// and reveal nothing a metric name does not.

// GenerateAdminToken writes a new random token to path (mode 0600, its
// directory 0700) and returns it. The file is replaced atomically, so a
// diag command never reads half a token.
func GenerateAdminToken(path string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := hex.EncodeToString(b[:])
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	f, err := os.CreateTemp(dir, ".admin-token-*")
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename: nothing there
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", fmt.Errorf("admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return tok, nil
}

// ReadAdminToken reads a token file written by GenerateAdminToken.
func ReadAdminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin token: %s is empty", path)
	}
	return tok, nil
}

// adminTokenFromEnv reads the token named by AdminTokenFileEnv, "" when
// the variable is unset. A set variable whose file cannot be read is an
// error: serving pprof open because a file went missing would fail open.
func adminTokenFromEnv() (string, error) {
	path := os.Getenv(AdminTokenFileEnv)
	if path == "" {
		return "", nil
	}
	tok, err := ReadAdminToken(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", AdminTokenFileEnv, err)
	}
	return tok, nil
}

// requireDebugToken wraps h so that /debug/pprof/ needs
// "Authorization: Bearer T" for one of tokens (empty ones ignored); other
// paths pass. With no token it returns h.
func requireDebugToken(h http.Handler, tokens ...string) http.Handler {
	var want [][]byte
	for _, t := range tokens {
		if t != "" {
			want = append(want, []byte("Bearer "+t))
		}
	}
	if len(want) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isDebugPath(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		got := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
		ok := 0
		for _, w := range want {
			ok |= subtle.ConstantTimeCompare(got, w)
		}
		if ok != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wardgate-admin"`)
			http.Error(w, `{"error":"admin token required for /debug/pprof/ (wardgate up keeps it in DATA/run/admin-token)"}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isDebugPath: everything under /debug/, in the cleaned form the mux
// routes by, so that "//debug/./pprof/heap" is not a way around.
func isDebugPath(p string) bool {
	c := filepath.Clean("/" + p)
	return c == "/debug" || strings.HasPrefix(c, "/debug/")
}
