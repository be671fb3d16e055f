package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
)

// fakeBucket starts an in-process S3 server holding bucket and returns
// the s3:// URL of it (the form BLOB_URL and --upload take) and the
// AWS_* environment a child needs to reach it.
func fakeBucket(t *testing.T, bucket string) (string, []string) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	return "s3://" + bucket + "?endpoint=" + srv.URL + "&region=us-east-1&use_path_style=true",
		[]string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test"}
}

// readTarGz returns the files of the .tar.gz object key in the store at u.
func readTarGz(t *testing.T, u, key string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	sink, err := blobsink.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	r, err := sink.Bucket.NewReader(ctx, key, nil)
	if err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	defer r.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

// TestUpOnlyJobqueueUploadsPostmortem: `up --only jobqueue`, the
// entrypoint of a job-queue container, runs one job queue on the LISTEN of
// its environment; a crash of it gives the same post-mortem as the whole
// stack, and that post-mortem ends up in the bucket of WARDGATE_UPLOAD,
// with its key and the report's first lines in up's log. The restarted
// job queue answers on the same port.
func TestUpOnlyJobqueueUploadsPostmortem(t *testing.T) {
	bucket, awsEnv := fakeBucket(t, "postmortems")
	dest := bucket + "&prefix=pods/"
	listen := testutil.FreeAddr(t)
	u := startUpEnv(t, append(awsEnv, "LISTEN="+listen, "WARDGATE_UPLOAD="+dest), "--only", "jobqueue")
	jq, ok := u.rows["jobqueue"]
	if !ok || len(u.rows) != 2 {
		t.Fatalf("table rows %v, want up and jobqueue", u.rows)
	}
	if jq.public != "http://"+listen {
		t.Fatalf("jobqueue public %s, want http://%s (its LISTEN)", jq.public, listen)
	}
	if code := postCollection(t, jq.public, []string{"before-crash"}); code != http.StatusAccepted {
		t.Fatalf("POST to the job queue: %d", code)
	}

	if err := syscall.Kill(jq.pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	up := u.waitLog("post-mortem uploaded", func(m map[string]any) bool {
		return m["msg"] == "post-mortem uploaded" || m["msg"] == "post-mortem upload failed; the bundle stays on disk"
	})
	if up["msg"] != "post-mortem uploaded" {
		t.Fatalf("upload failed: %v", up)
	}
	dir, key := up["postmortem"].(string), up["key"].(string)
	host, _ := os.Hostname()
	if want := host + "/" + filepath.Base(dir) + ".tar.gz"; key != want {
		t.Errorf("key %q, want %q", key, want)
	}
	if fmt.Sprint(up["report_head"]) == "" || !strings.Contains(fmt.Sprint(up["report_head"]), "# Post-mortem report") {
		t.Errorf("report_head %v, want the report's first lines", up["report_head"])
	}
	if strings.Contains(fmt.Sprint(up), "AWS_SECRET") {
		t.Errorf("log line carries a credential: %v", up)
	}
	files := readTarGz(t, bucket, "pods/"+key)
	name := filepath.Base(dir)
	for _, f := range []string{"core", "exe", "crash.txt", "bundle.json", "report.md", "report.json"} {
		if len(files[name+"/"+f]) == 0 {
			t.Errorf("uploaded bundle has no %s (has %d files)", f, len(files))
		}
	}
	if !strings.HasPrefix(string(files[name+"/crash.txt"]), "SIGQUIT: quit") {
		t.Errorf("crash.txt starts %.60q", files[name+"/crash.txt"])
	}
	local, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if string(files[name+"/report.md"]) != string(local) {
		t.Error("uploaded report.md differs from the one on disk")
	}
	core, err := os.CreateTemp(t.TempDir(), "core")
	if err != nil {
		t.Fatal(err)
	}
	core.Write(files[name+"/core"])
	core.Close()
	if ef, err := elf.Open(core.Name()); err != nil || ef.Type != elf.ET_CORE {
		t.Errorf("uploaded core is not an ELF core: %v", err)
	}

	u.waitLog("jobqueue restart", func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "jobqueue" && m["pid"] != float64(jq.pid)
	})
	waitOK(t, jq.public+"/healthz")
	if code := u.stop(); code != 0 {
		t.Fatalf("up exited %d, want 0", code)
	}
}

// TestUpOnlyUploadFailureKeepsBundle: when the bucket cannot take the
// post-mortem, up logs why, keeps the bundle on disk, carries on, and its
// exit code says so (4).
func TestUpOnlyUploadFailureKeepsBundle(t *testing.T) {
	bucket, awsEnv := fakeBucket(t, "postmortems")
	missing := strings.Replace(bucket, "s3://postmortems", "s3://no-such-bucket", 1)
	u := startUpEnv(t, append(awsEnv, "LISTEN="+testutil.FreeAddr(t)), "--only", "jobqueue", "--upload", missing)
	jq := u.rows["jobqueue"]
	if err := syscall.Kill(jq.pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	failed := u.waitLog("upload failure", func(m map[string]any) bool {
		return m["msg"] == "post-mortem upload failed; the bundle stays on disk"
	})
	if !strings.Contains(fmt.Sprint(failed["err"]), "s3://no-such-bucket") {
		t.Errorf("error does not name the store: %v", failed["err"])
	}
	dir := failed["postmortem"].(string)
	for _, f := range []string{"core", "report.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("bundle on disk: %v", err)
		}
	}
	u.waitLog("jobqueue restart", func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "jobqueue" && m["pid"] != float64(jq.pid)
	})
	if code := u.stop(); code != exitUploadFailed {
		t.Fatalf("up exited %d, want %d (stopped, an upload failed)", code, exitUploadFailed)
	}
}

// TestUpOnlyGateway: `up --only gateway --gateway-config FILE` serves on
// the file's listen: address (the socket up holds) and a killed gateway
// comes back on it.
func TestUpOnlyGateway(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "backend says hi")
	}))
	defer backend.Close()
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "gateway.yaml")
	yaml := fmt.Sprintf(`listen: %q
admin: %q
routes:
  - {path_prefix: /, upstream: app}
upstreams:
  app:
    targets: [{url: %q}]
`, listen, admin, backend.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	u := startUpEnv(t, nil, "--only", "gateway", "--gateway-config", cfg)
	gw := u.rows["gateway"]
	if gw.public != "http://"+listen || gw.metrics != "http://"+admin+"/metrics" {
		t.Fatalf("gateway row %+v, want public %s and admin %s from the file", gw, listen, admin)
	}
	get := func() {
		t.Helper()
		code, body := httpGet(t, gw.public+"/")
		if code != http.StatusOK || body != "backend says hi" {
			t.Fatalf("GET through the gateway: %d %q", code, body)
		}
	}
	get()
	if err := syscall.Kill(gw.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	u.waitLog("gateway restart", func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "gateway" && m["pid"] != float64(gw.pid)
	})
	get() // waits in the held socket's accept queue if the gateway is not up yet
	if code := u.stop(); code != 0 {
		t.Fatalf("up exited %d, want 0", code)
	}
}
