package blobsink

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Stored payloads are user data: objects 0600, every directory the sink
// creates 0700, whatever the umask lets through by default (0644/0755).
func TestFileObjectsArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	s, err := Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := "payloads/2024/01/02/03/x-1.ndjson.gz"
	if err := s.Put(context.Background(), key, []byte("x"), "application/gzip"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("object mode %v, want 0600", st.Mode().Perm())
	}
	for d := filepath.Dir(filepath.Join(dir, filepath.FromSlash(key))); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("directory %s mode %v, want 0700", d, st.Mode().Perm())
		}
		if d == dir {
			break
		}
	}
}
