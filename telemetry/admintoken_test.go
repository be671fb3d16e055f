package telemetry_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/telemetry"
)

// A process started with WARDGATE_ADMIN_TOKEN_FILE (as `wardgate up`
// starts its children) wants that token for /debug/pprof/ in every
// spelling of the path, keeps /metrics and /healthz open, and still
// accepts an operator's ADMIN_TOKEN where one is set.
func TestAdminDebugToken(t *testing.T) {
	clearOTEL(t)
	path := filepath.Join(t.TempDir(), "run", "admin-token")
	tok, err := telemetry.GenerateAdminToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("token dir: %v, mode %v, want 0700", err, st.Mode().Perm())
	}
	if again, _ := telemetry.GenerateAdminToken(path); again == tok {
		t.Fatal("two runs got the same token")
	}
	tok, err = telemetry.ReadAdminToken(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(telemetry.AdminTokenFileEnv, path)
	tel := setup(t, "wardgate-test")
	if tel.DebugToken != tok {
		t.Fatalf("Setup read DebugToken %q, want the file's %q", tel.DebugToken, tok)
	}
	bearer := func(s string) http.Header { return http.Header{"Authorization": {"Bearer " + s}} }

	h := tel.AdminHandler("", nil)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof", "//debug/pprof/heap", "/debug/../debug/pprof/heap", "/DEBUG/pprof/heap"} {
		for _, hdr := range []http.Header{nil, bearer("wrong"), bearer(""), {"Authorization": {tok}}} {
			if rec := get(t, h, p, hdr); rec.Code == http.StatusOK && strings.HasPrefix(strings.ToLower(p), "/debug") {
				t.Errorf("GET %s with %v: 200, want it refused", p, hdr)
			}
		}
	}
	if rec := get(t, h, "/debug/pprof/goroutine?debug=1", bearer(tok)); rec.Code != http.StatusOK {
		t.Errorf("pprof with the token: %d", rec.Code)
	}
	for _, p := range []string{"/metrics", "/healthz"} {
		if rec := get(t, h, p, nil); rec.Code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", p, rec.Code)
		}
	}

	// An operator's ADMIN_TOKEN locks everything and opens pprof too.
	locked := tel.AdminHandler("op-token", nil)
	if rec := get(t, locked, "/debug/pprof/goroutine?debug=1", bearer("op-token")); rec.Code != http.StatusOK {
		t.Errorf("pprof with ADMIN_TOKEN: %d", rec.Code)
	}
	if rec := get(t, locked, "/metrics", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("/metrics without ADMIN_TOKEN: %d, want 401", rec.Code)
	}

	// A token file that went missing fails the start instead of serving
	// pprof open.
	t.Setenv(telemetry.AdminTokenFileEnv, filepath.Join(t.TempDir(), "missing"))
	if _, err := telemetry.Setup(context.Background(), "wardgate-test"); err == nil {
		t.Error("Setup with a missing token file: no error")
	}
}
