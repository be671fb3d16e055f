package blobsink

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// A process killed in the middle of a Put leaves fileblob's temporary file
// next to where the object would have been. RemoveStaleTemp removes those
// nobody has written to for a while, and nothing else.
func TestRemoveStaleTemp(t *testing.T) {
	dir := t.TempDir()
	hour := filepath.Join(dir, "payloads/2026/11/25/18")
	if err := os.MkdirAll(hour, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]time.Duration{ // name: age
		"vm-1-17.ndjson.gz":                      time.Hour,        // an object: kept, however old
		"vm-1-18.ndjson.gz.18eb5c87cb2a5f2b.tmp": time.Hour,        // killed writer: removed
		"vm-2-19.ndjson.gz.18eb5c87cb2a5f2c.tmp": time.Second,      // live writer: kept
		"notes.tmp":                              time.Hour,        // not fileblob's: kept
		"vm-3-20.ndjson.gz.18eb5c87cb2a5f2d.tmp": 11 * time.Minute, // removed
	}
	for name, age := range files {
		p := filepath.Join(hour, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.RemoveStaleTemp(context.Background()); err != nil || n != 2 {
		t.Errorf("RemoveStaleTemp = %d, %v; want 2", n, err)
	}
	for name, age := range files {
		_, err := os.Stat(filepath.Join(hour, name))
		gone := os.IsNotExist(err)
		if want := strings.HasSuffix(name, ".tmp") && name != "notes.tmp" && age > staleTempAge; gone != want {
			t.Errorf("%s (age %v): removed = %v, want %v", name, age, gone, want)
		}
	}
}
