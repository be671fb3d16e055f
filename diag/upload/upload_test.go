package upload_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/wardgate/wardgate/diag/upload"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
)

// fakeS3 is an in-process S3 server with bucket "bundles"; it returns the
// s3:// URL the commands take.
func fakeS3(t *testing.T) string {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("bundles"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	return "s3://bundles?endpoint=" + srv.URL + "&region=us-east-1&use_path_style=true"
}

func writeBundle(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "20261204T120000Z-jobqueue-42")
	if err := os.MkdirAll(filepath.Join(dir, "core"), 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"report.md":   "# Post-mortem report\n\n## Findings\n\ncrash: SIGSEGV in main.handler (main.go:12) with Authorization: Bearer abcdefghijklmnop\nmore\nmore\nmore\nlast",
		"bundle.json": `{"service":"jobqueue"}`,
		"core/core":   strings.Repeat("\x00", 1<<20) + "end",
		"core/exe":    "ELF",
		"crash.txt":   "SIGSEGV: segmentation violation",
		"environ":     "AWS_SECRET_ACCESS_KEY=<redacted>\n",
		"report.json": "{}",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBundleToS3: a bundle uploaded to an S3 store comes back, from the
// key Bundle reported, as the same directory; the log material (URL,
// report head) carries no secret.
func TestBundleToS3(t *testing.T) {
	u := fakeS3(t)
	dir := writeBundle(t)
	ctx := context.Background()
	res, err := upload.Bundle(ctx, u+"&prefix=postmortems/", dir)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if want := host + "/" + filepath.Base(dir) + ".tar.gz"; res.Key != want {
		t.Errorf("key %q, want %q", res.Key, want)
	}
	if len(res.Head) != 5 || res.Head[0] != "# Post-mortem report" || !strings.Contains(res.Head[2], "SIGSEGV in main.handler") {
		t.Errorf("head %q", res.Head)
	}
	if strings.Contains(strings.Join(res.Head, "\n"), "abcdefghijklmnop") {
		t.Errorf("head leaks the bearer token: %q", res.Head)
	}
	if res.Bytes <= 0 || res.Bytes > 64<<10 {
		t.Errorf("object %d bytes: a 1 MiB core of zeros should compress to a few KiB", res.Bytes)
	}

	sink, err := blobsink.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	r, err := sink.Bucket.NewReader(ctx, "postmortems/"+res.Key, nil)
	if err != nil {
		t.Fatalf("the object is not where Bundle said: %v", err)
	}
	defer r.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(b)
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(dir), p)
		want, _ := os.ReadFile(p)
		if got[filepath.ToSlash(rel)] != string(want) {
			t.Errorf("%s: %d bytes in the archive, %d on disk", rel, len(got[filepath.ToSlash(rel)]), len(want))
		}
		delete(got, filepath.ToSlash(rel))
		return nil
	})
	for name := range got {
		t.Errorf("archive has %s, not in the bundle", name)
	}
}

// TestBundleFailures: a bucket that does not exist and a store that is
// down give an error naming the (redacted) store; the bundle stays.
func TestBundleFailures(t *testing.T) {
	u := fakeS3(t)
	dir := writeBundle(t)
	ctx := context.Background()
	_, err := upload.Bundle(ctx, strings.Replace(u, "s3://bundles", "s3://missing", 1), dir)
	if err == nil || !strings.Contains(err.Error(), "s3://missing") {
		t.Errorf("missing bucket: err %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "s3://bundles?endpoint=http://" + ln.Addr().String() + "&region=us-east-1&use_path_style=true"
	ln.Close()
	if _, err := upload.Bundle(ctx, down, dir); err == nil {
		t.Error("store down: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "core", "core")); err != nil {
		t.Errorf("bundle gone after a failed upload: %v", err)
	}
	if _, err := upload.Bundle(ctx, "ftp://x", dir); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("ftp: err %v", err)
	}
}

func TestRedact(t *testing.T) {
	got := upload.Redact("s3://user:pw@bucket?endpoint=http://s3:8333&access_key=AKIAABCDEFGHIJKLMNOP&region=x")
	for _, leak := range []string{"pw", "AKIA"} {
		if strings.Contains(got, leak) {
			t.Errorf("Redact left %q in %s", leak, got)
		}
	}
	if !strings.Contains(got, "endpoint=http://s3:8333") || !strings.Contains(got, "region=x") {
		t.Errorf("Redact removed what is not secret: %s", got)
	}
}
