// Package upload copies a bundle directory (a post-mortem of `wardgate
// up`, a `diag capture`, `diag triage` or `diag watch` bundle) to a blob
// store as one gzip'd tar object, so it outlives the pod or machine that
// wrote it: a crashed container's files go with it, the bucket stays.
//
// The store is named by the same gocloud.dev/blob URLs as the job queue's
// BLOB_URL (s3://bucket?endpoint=...&region=...&use_path_style=true,
// file:///dir, mem://), opened through jobqueue/blobsink so the S3
// defaults that third-party stores need apply here too; gocloud's own
// prefix=DIR/ parameter puts the bundles under a prefix. Credentials come
// from the usual AWS_* environment, never from the URL.
//
// One object per bundle, not one per file: a bundle is read as a whole
// (dlv core needs core and exe together), one GET fetches it, and a
// partial upload never looks like a bundle: the object appears only when
// the writer closes without error. The key is HOST/DIRNAME.tar.gz, HOST
// being the machine's hostname (a pod's name), and the archive holds
// DIRNAME/..., so `tar xzf` recreates the directory. archive/tar and
// compress are the standard library's and klauspost's: nothing here is a
// format of its own.
//
// What goes up is what the bundle holds on disk, already redacted by its
// writer (environ, cmdline: internal/redact); what this package logs (the
// URL, the report's first lines) is redacted again, since logs travel
// further than buckets. A core holds every secret in the process's
// memory: the bucket must be as private as the bundle directory.
package upload

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
	"gocloud.dev/blob"

	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/internal/redact"
	"github.com/wardgate/wardgate/jobqueue/blobsink"
)

// Env is the environment variable every command that writes a bundle
// reads when its --upload flag is not given.
const Env = "WARDGATE_UPLOAD"

// URL is the upload destination: flag if set, else $WARDGATE_UPLOAD ("":
// no upload).
func URL(flag string) string {
	if flag != "" {
		return flag
	}
	return strings.TrimSpace(os.Getenv(Env))
}

// Check reports whether raw is a URL an upload can go to, without opening
// the store (commands check their flag before doing any work).
func Check(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("want a blob store URL such as s3://bucket?endpoint=...&region=...&use_path_style=true, file:///dir or mem://, got %q", Redact(raw))
	}
	switch u.Scheme {
	case "s3", "file", "mem":
		return nil
	}
	return fmt.Errorf("%s: scheme %q not supported (s3, file, mem)", Redact(raw), u.Scheme)
}

// Result is one uploaded bundle.
type Result struct {
	URL   string // the store, redacted (Redact)
	Key   string // the object: HOST/DIRNAME.tar.gz
	Bytes int64  // size of the object (compressed)
	// Head is the first lines of the bundle's report, redacted: what to
	// print next to the key so a log line says what the bundle is about.
	Head []string
}

// String is the store, the key and the size, for a message.
func (r Result) String() string {
	return fmt.Sprintf("%s key %s (%d bytes)", r.URL, r.Key, r.Bytes)
}

// Bundle uploads dir to the store at rawURL as one object (see the
// package doc) and returns where it went. On error nothing is left in the
// store under the key and dir is untouched.
func Bundle(ctx context.Context, rawURL, dir string) (Result, error) {
	res := Result{URL: Redact(rawURL), Head: Head(dir, headLines)}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return res, fmt.Errorf("upload %s: %w", dir, err)
	}
	name := filepath.Base(abs)
	res.Key = path.Join(host, name+".tar.gz")
	if err := Check(rawURL); err != nil {
		return res, fmt.Errorf("upload %s: %w", dir, err)
	}
	sink, err := blobsink.Open(ctx, rawURL)
	if err != nil {
		// blobsink's message quotes the URL as given: say it redacted.
		return res, fmt.Errorf("upload %s to %s: %s", dir, res.URL, strings.ReplaceAll(err.Error(), rawURL, res.URL))
	}
	defer sink.Close()
	// Cancelling the writer's context before Close aborts the upload: a
	// failed archive never becomes an object.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := sink.Bucket.NewWriter(wctx, res.Key, &blob.WriterOptions{ContentType: "application/gzip"})
	if err != nil {
		return res, fmt.Errorf("upload %s to %s: %w", dir, res.URL, err)
	}
	cw := &countWriter{w: w}
	if err := writeTarGz(cw, abs, name); err != nil {
		cancel()
		_ = w.Close()
		return res, fmt.Errorf("upload %s to %s: %w", dir, res.URL, err)
	}
	if err := w.Close(); err != nil {
		return res, fmt.Errorf("upload %s to %s key %s: %w", dir, res.URL, res.Key, err)
	}
	res.Bytes = cw.n
	return res, nil
}

// writeTarGz writes the regular files under dir as name/REL into w.
func writeTarGz(w io.Writer, dir, name string) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed) // cores are big and mostly zeros
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() && !info.Mode().IsRegular() {
			return nil // sockets, symlinks: not part of a bundle
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = path.Join(name, filepath.ToSlash(rel))
		hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid = "", "", 0, 0
		if d.IsDir() {
			hdr.Name += "/"
			return tw.WriteHeader(hdr)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		// A file still growing is cut at the size in its header.
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// headLines is how many lines of a report Bundle returns in Result.Head.
const headLines = 5

// reportFiles are where a bundle's verdict is, best first: a post-mortem's
// report, triage's report (diag/triage saves report.txt), watch's findings
// (watch.FindingsFile), a post-mortem's crash output when there was no
// core to analyze.
var reportFiles = []string{bundle.ReportFile, "report.txt", "findings.txt", bundle.CrashOutputFile}

// Head returns the first n non-empty lines of the first report found in
// dir (report.md, report.txt, findings.txt, crash.txt), redacted; none for
// a bundle without one (a plain capture).
func Head(dir string, n int) []string {
	for _, name := range reportFiles {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		var lines []string
		sc := bufio.NewScanner(f)
		for sc.Scan() && len(lines) < n {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				lines = append(lines, redact.Text(l))
			}
		}
		f.Close()
		return lines
	}
	return nil
}

// Redact is raw as it may be logged: userinfo and the values of
// secret-looking query parameters replaced (redact.Value).
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redact.Text(raw)
	}
	q := u.Query()
	for k, vs := range q {
		for i, v := range vs {
			vs[i] = redact.Value(k, v)
		}
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	if u.User != nil {
		u.User = url.User(redact.Placeholder)
	}
	s, _ := url.PathUnescape(u.String())
	return s
}
