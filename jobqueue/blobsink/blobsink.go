// Package blobsink is the jobqueue.Sink that stores batches through
// gocloud.dev/blob, so one URL picks the store: file:// (a directory),
// mem:// (in-process, for tests and embedding) or s3:// (AWS S3 and
// S3-compatible stores such as MinIO).
//
// URLs are opened through a URLMux private to each call rather than
// gocloud's process-wide DefaultURLMux, and the defaults that bite an ingest
// service are fixed up here:
//
//   - file://: the directory is created (create_dir), temporary files are
//     written next to their final path (no_tmp_dir: os.TempDir may be another
//     filesystem, where the final rename fails), and no ".attrs" sidecar
//     files are written (metadata=skip), so the directory holds exactly the
//     payload objects, plus KEY.<hex>.tmp files being written. A process
//     killed in the middle of a Put leaves its temporary file behind (never
//     acknowledged, and gocloud's List does not skip it): RemoveStaleTemp
//     removes the ones nothing has written to for 10 minutes. A relative
//     path is resolved against the working directory: file://./data/blobs
//     is ./data/blobs.
//   - s3://: the AWS SDK's default request checksums (CRC32 trailers,
//     x-amz-checksum-* headers) are turned down to "when required", which
//     third-party S3 stores reject otherwise, unless the URL sets
//     request_checksum_calculation / response_checksum_validation itself.
//     endpoint, region and use_path_style=true are gocloud's own parameters;
//     credentials come from the usual AWS_* environment. The SDK's
//     connections are dialled without pprof labels (see s3Opener), so they
//     do not keep the trace_id of the batch that opened them.
package blobsink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/blob/s3blob"
)

// Sink stores objects in a gocloud.dev/blob bucket.
type Sink struct {
	Bucket *blob.Bucket
	url    string
	dir    string // of a file:// bucket
}

// staleTempAge is how long a temporary file must have gone unwritten before
// RemoveStaleTemp takes its writer for dead: a Put writes its body at once.
const staleTempAge = 10 * time.Minute

// RemoveStaleTemp removes from a file:// directory the temporary files of
// writes that a killed process never finished (see the package doc) and
// returns how many. Other stores have none. It walks the whole directory,
// about a second per million files: run it in the background, not before
// serving.
func (s *Sink) RemoveStaleTemp(ctx context.Context) (int, error) {
	if s.dir == "" {
		return 0, nil
	}
	return removeStaleTemp(ctx, s.dir, time.Now().Add(-staleTempAge))
}

// tempFile matches fileblob's temporary names: KEY.<UnixNano in hex>.tmp.
var tempFile = regexp.MustCompile(`\.[0-9a-f]+\.tmp$`)

// removeStaleTemp removes the temporary files under dir that were last
// written before cutoff.
func removeStaleTemp(ctx context.Context, dir string, cutoff time.Time) (int, error) {
	removed := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return ctx.Err()
		}
		if !tempFile.MatchString(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // renamed by its writer meanwhile
		}
		if err != nil {
			return err
		}
		if info.ModTime().Before(cutoff) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			removed++
		}
		return nil
	})
	return removed, err
}

// Open opens the bucket named by rawURL (see the package doc).
func Open(ctx context.Context, rawURL string) (*Sink, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("blobsink: BLOB_URL %q: %w", rawURL, err)
	}
	q := u.Query()
	switch u.Scheme {
	case fileblob.Scheme:
		dir := u.Path
		if u.Host == "." {
			dir = filepath.Join(".", u.Path)
		} else if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("blobsink: BLOB_URL %q: file URLs are file:///abs/dir or file://./rel/dir", rawURL)
		}
		if dir == "" {
			return nil, fmt.Errorf("blobsink: BLOB_URL %q: no directory", rawURL)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("blobsink: BLOB_URL %q: %w", rawURL, err)
		}
		// Payloads are user data: only the service's user reads them.
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("blobsink: BLOB_URL %q: %w", rawURL, err)
		}
		setDefault(q, "dir_file_mode", "0700")
		setDefault(q, "no_tmp_dir", "true")
		setDefault(q, "metadata", "skip")
		u = &url.URL{Scheme: fileblob.Scheme, Path: filepath.ToSlash(abs)}
	case s3blob.Scheme:
		if u.Host == "" {
			return nil, fmt.Errorf("blobsink: BLOB_URL %q: no bucket name", rawURL)
		}
		setDefault(q, "request_checksum_calculation", "when_required")
		setDefault(q, "response_checksum_validation", "when_required")
	case memblob.Scheme:
	default:
		return nil, fmt.Errorf("blobsink: BLOB_URL %q: scheme %q not supported (file, s3, mem)", rawURL, u.Scheme)
	}
	u.RawQuery = q.Encode()

	mux := new(blob.URLMux)
	mux.RegisterBucket(fileblob.Scheme, &fileblob.URLOpener{})
	mux.RegisterBucket(memblob.Scheme, &memblob.URLOpener{})
	mux.RegisterBucket(s3blob.Scheme, s3Opener{}) // s3blob.URLOpener with label-free dials (s3.go)
	b, err := mux.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("blobsink: BLOB_URL %q: %w", rawURL, err)
	}
	sink := &Sink{Bucket: b, url: u.Redacted()}
	if u.Scheme == fileblob.Scheme {
		sink.dir = filepath.FromSlash(u.Path)
	}
	return sink, nil
}

func setDefault(q url.Values, k, v string) {
	if q.Get(k) == "" {
		q.Set(k, v)
	}
}

// Put writes the object in one call. For S3 this is a single PutObject for
// bodies under the upload part size (5 MiB), which BATCH_MAX_BYTES defaults
// keep gzip batches well under.
func (s *Sink) Put(ctx context.Context, key string, body []byte, contentType string) error {
	if err := s.Bucket.WriteAll(ctx, key, body, &blob.WriterOptions{ContentType: contentType}); err != nil {
		return fmt.Errorf("blobsink: put %s: %w", key, err)
	}
	if s.dir != "" { // fileblob creates files 0666 &^ umask
		if err := os.Chmod(filepath.Join(s.dir, filepath.FromSlash(key)), 0o600); err != nil {
			return fmt.Errorf("blobsink: put %s: %w", key, err)
		}
	}
	return nil
}

// Close closes the bucket.
func (s *Sink) Close() error { return s.Bucket.Close() }

// String is the bucket URL as opened, without credentials.
func (s *Sink) String() string { return s.url }
