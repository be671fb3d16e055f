package blobsink

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenFileRelativeCreatesDirAndWritesNoSidecars(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := Open(context.Background(), "file://./data/blobs")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(context.Background(), "payloads/2024/01/02/03/x-1.ndjson", []byte("{}\n"), "application/x-ndjson"); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(filepath.Join(dir, "data/blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, dir+"/"))
		}
		return err
	})
	if len(files) != 1 || files[0] != "data/blobs/payloads/2024/01/02/03/x-1.ndjson" {
		t.Fatalf("files %v, want exactly the object", files)
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"ftp://host/x", "s3://", "file://host/x", "::"} {
		if _, err := Open(context.Background(), u); err == nil || !strings.Contains(err.Error(), "BLOB_URL") {
			t.Errorf("Open(%q) = %v", u, err)
		}
	}
}
