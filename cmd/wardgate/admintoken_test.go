package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/telemetry"
)

// adminGet GETs u from an admin listener of a `wardgate up` whose data
// directory is data, with the run's token, as an SRE's curl would:
// curl -H "Authorization: Bearer $(cat DATA/run/admin-token)".
func adminGet(t *testing.T, data, u string) (string, error) {
	t.Helper()
	tok, err := telemetry.ReadAdminToken(filepath.Join(data, telemetry.AdminTokenFile))
	if err != nil {
		return "", err
	}
	code, body := adminGetWith(t, u, tok)
	if code != http.StatusOK {
		return "", &httpStatusError{u, code}
	}
	return body, nil
}

type httpStatusError struct {
	url  string
	code int
}

func (e *httpStatusError) Error() string {
	return "GET " + e.url + ": " + http.StatusText(e.code)
}

// adminGetWith GETs u with "Authorization: Bearer tok" (none when tok is
// empty) and returns the status and body.
func adminGetWith(t *testing.T, u, tok string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Under `wardgate up` every admin listener (up's own and each child's)
// wants this run's token for /debug/pprof/, while /metrics and /healthz
// stay open; the token file is 0600 under a 0700 DATA/run; diag commands
// find it from --data or --pid-file without anyone typing it; stored blobs
// are 0600 in 0700 directories.
func TestUpAdminTokenGuardsPprof(t *testing.T) {
	u := startUp(t)
	tokenFile := filepath.Join(u.data, telemetry.AdminTokenFile)
	st, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatalf("up wrote no token file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", tokenFile, st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Dir(tokenFile)); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("DATA/run: %v, mode %v, want 0700", err, st.Mode().Perm())
	}
	tok, err := telemetry.ReadAdminToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < 32 {
		t.Errorf("token %q is too short to be a secret", tok)
	}

	for name, row := range u.rows {
		admin := strings.TrimSuffix(row.metrics, "/metrics")
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "//debug/./pprof/heap"} {
			if code, _ := adminGetWith(t, admin+path, ""); code != http.StatusUnauthorized {
				t.Errorf("%s: GET %s without token: %d, want 401", name, path, code)
			}
			if code, _ := adminGetWith(t, admin+path, "wrong"); code != http.StatusUnauthorized {
				t.Errorf("%s: GET %s with a wrong token: %d, want 401", name, path, code)
			}
		}
		if code, body := adminGetWith(t, admin+"/debug/pprof/goroutine?debug=1", tok); code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
			t.Errorf("%s: goroutine profile with the token: %d %.200s", name, code, body)
		}
		for _, path := range []string{"/metrics", "/healthz"} {
			if code, _ := adminGetWith(t, admin+path, ""); code != http.StatusOK {
				t.Errorf("%s: GET %s without token: %d, want 200 (scrapers and probes)", name, path, code)
			}
		}
	}

	// diag finds the token: from --data, from a pid file under DATA/run,
	// and says what to do when it has none.
	jq := strings.TrimSuffix(u.rows["jobqueue-1"].metrics, "/metrics")
	elsewhere := t.TempDir() // no ./data here
	if stdout, stderr, code := runWardgate(t, elsewhere, "diag", "goroutines", "--target", jq, "--data", u.data); code != 0 || stdout == "" {
		t.Errorf("diag goroutines --data: exit %d\n%s", code, stderr)
	}
	if stdout, stderr, code := runWardgate(t, elsewhere, "diag", "profile", "--target", jq, "--type", "heap", "--data", u.data, "--out", filepath.Join(elsewhere, "heap.pb.gz")); code != 0 || stdout == "" {
		t.Errorf("diag profile --data: exit %d\n%s", code, stderr)
	}
	out := filepath.Join(elsewhere, "watch")
	if _, stderr, code := runWardgate(t, elsewhere, "diag", "watch", "--target", jq, "--goroutines", "1", "--once", "--out", out,
		"--core", "--pid-file", filepath.Join(u.data, "run", "jobqueue-1", "pid")); code != 3 {
		t.Errorf("diag watch --pid-file: exit %d, want 3 (captured)\n%s", code, stderr)
	}
	_, stderr, code := runWardgate(t, elsewhere, "diag", "goroutines", "--target", jq)
	if code == 0 || !strings.Contains(stderr, "--data") {
		t.Errorf("diag goroutines without any token: exit %d, want a failure that names --data:\n%s", code, stderr)
	}

	// Stored payloads are readable by the service's user only.
	if code := postCollection(t, u.rows["gateway"].public, []string{"mode-check"}); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("post: %d", code)
	}
	blobs := filepath.Join(u.data, "blobs")
	testutil.Eventually(context.Background(), t, 2*time.Minute, 50*time.Millisecond, "a stored blob", func() (bool, string) {
		return len(storedMarkers(t, blobs)) > 0, "nothing stored yet"
	})
	_ = filepath.WalkDir(blobs, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil // a temp file renamed meanwhile
		}
		if d.IsDir() && info.Mode().Perm() != 0o700 {
			t.Errorf("blob directory %s: mode %v, want 0700", p, info.Mode().Perm())
		}
		if !d.IsDir() && !strings.HasSuffix(p, ".tmp") && info.Mode().Perm() != 0o600 {
			t.Errorf("blob %s: mode %v, want 0600", p, info.Mode().Perm())
		}
		return nil
	})

	if code := u.stop(); code != 0 {
		t.Fatalf("up exited %d", code)
	}
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Errorf("the run's token file outlives up: %v", err)
	}
}
