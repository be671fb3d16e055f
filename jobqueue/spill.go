package jobqueue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// The spill directory holds acked payloads that could not be stored before
// a drain deadline: each abandoned batch is written as the object it would
// have been, at SpillDir/<its object key>, same bytes (NDJSON, gzip'd when
// COMPRESSION=gzip). The next Start uploads each one under that same key
// and then removes it. The same key makes the upload idempotent: if a
// process dies between the upload and the removal, or two processes share
// the directory and both upload a file, the object is overwritten with
// identical bytes, so every payload is stored exactly once.

// spillKey matches the keys of the objects the queue writes; nothing else
// under SpillDir is uploaded.
var spillKey = regexp.MustCompile(`^payloads/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+\.ndjson(\.gz)?$`)

// spillTempAge is how long a temporary spill file must have gone unwritten
// before recovery takes its writer for dead (a spill writes at once).
const spillTempAge = 10 * time.Minute

// spill writes one batch durably under SpillDir: a temporary file in the
// final directory, fsync'd, renamed, then every directory from the final
// one up to SpillDir fsync'd so the name survives a power cut too.
func (q *Queue) spill(key string, body []byte) (string, error) {
	root := q.cfg.SpillDir
	path := filepath.Join(root, filepath.FromSlash(key))
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("spill %s: %w", key, err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("spill %s: %w", key, err)
	}
	tmp := f.Name()
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("spill %s: %w", key, err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return "", fmt.Errorf("spill %s: %w", key, err)
		}
		if rel, err := filepath.Rel(root, d); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			break
		}
	}
	_ = syncDir(filepath.Dir(root)) // SPILL_DIR itself may be new; best effort above it
	return path, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// spilled is one object found in SpillDir.
type spilled struct {
	path, key string
}

// spillFiles lists the spilled objects, oldest key first, and removes
// temporary files that a process killed while spilling left behind. Only
// SpillDir/payloads/ is walked (every key starts there), so a SPILL_DIR
// pointed at a busy directory by mistake costs no walk of it.
func (q *Queue) spillFiles(ctx context.Context) ([]spilled, error) {
	root := q.cfg.SpillDir
	top := filepath.Join(root, "payloads")
	var out []spilled
	ignored := 0
	cutoff := time.Now().Add(-spillTempAge)
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == top {
			return fs.SkipAll // nothing was ever spilled
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			return ctx.Err()
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		switch {
		case strings.HasSuffix(key, ".tmp"):
			if info, err := d.Info(); err == nil && info.ModTime().Before(cutoff) {
				_ = os.Remove(path) // never renamed: its batch was not spilled
			}
		case spillKey.MatchString(key) && d.Type().IsRegular():
			out = append(out, spilled{path: path, key: key})
		default:
			ignored++
		}
		return nil
	})
	if ignored > 0 {
		q.log.WarnContext(ctx, "files in SPILL_DIR that are not spilled objects were left alone", "dir", root, "files", ignored)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, err
}

// recoverSpill uploads every spilled object under its key, retrying (with
// the PUT deadline and backoff) until it is stored or ctx ends, and
// removes each file once stored. Files it does not get to stay for the
// next start.
func (q *Queue) recoverSpill(ctx context.Context) {
	files, err := q.spillFiles(ctx)
	if err != nil && ctx.Err() == nil {
		q.log.ErrorContext(ctx, "listing SPILL_DIR; spilled payloads stay there", "dir", q.cfg.SpillDir, "err", err)
	}
	if len(files) == 0 {
		return
	}
	q.log.InfoContext(ctx, "uploading payloads spilled by an earlier drain", "dir", q.cfg.SpillDir, "objects", len(files))
	total := 0
	for _, f := range files {
		body, err := os.ReadFile(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // another job queue sharing the directory took it
		}
		if err != nil {
			q.log.ErrorContext(ctx, "reading a spilled object; left in place", "path", f.path, "err", err)
			continue
		}
		ct := "application/x-ndjson"
		if strings.HasSuffix(f.key, ".gz") {
			ct = "application/gzip"
		}
		n, err := countLinesOf(body, ct)
		if err != nil {
			q.log.ErrorContext(ctx, "spilled object is damaged; left in place, not uploaded", "path", f.path, "err", err)
			continue
		}
		for attempt := 1; ; attempt++ {
			err = q.put(ctx, f.key, body, ct, attempt)
			if err == nil || ctx.Err() != nil {
				break
			}
			wait := q.backoff(attempt)
			q.log.WarnContext(ctx, "spilled object upload failed, retrying", "key", f.key, "attempt", attempt, "retry_in", wait.String(), "err", err)
			if sleep(ctx, wait) != nil {
				break
			}
		}
		if err != nil {
			q.log.WarnContext(ctx, "stopped before the spilled payloads were uploaded; they stay in SPILL_DIR for the next start",
				"dir", q.cfg.SpillDir, "left", len(files)-total)
			return
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Uploaded: a later start uploads it again under the same key,
			// an identical overwrite.
			q.log.WarnContext(ctx, "removing an uploaded spilled object", "path", f.path, "err", err)
		}
		q.m.stored.Add(ctx, int64(n))
		q.m.recovered.Add(ctx, int64(n))
		total++
	}
	q.log.InfoContext(ctx, "spilled payloads uploaded", "objects", total)
}

// countLinesOf counts the payload lines of an object body, checking that
// it decompresses.
func countLinesOf(body []byte, ct string) (int, error) {
	if ct != "application/gzip" {
		return bytes.Count(body, []byte("\n")), nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	n := 0
	buf := make([]byte, 32<<10)
	for {
		m, err := zr.Read(buf)
		n += bytes.Count(buf[:m], []byte("\n"))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// sleep waits d or until ctx ends (then it returns ctx's error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
