package stack

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/diag/upload"
)

// uploadTimeout bounds one post-mortem upload: a core of a few GiB over a
// slow link, not a store that hangs forever.
const uploadTimeout = 15 * time.Minute

// uploader sends each post-mortem directory to the blob store in the
// background and remembers how many failed (Run's error, up's exit code).
type uploader struct {
	url    string
	log    *slog.Logger
	wg     sync.WaitGroup
	failed atomic.Int64
}

// start uploads dir, the post-mortem of service, and logs the outcome:
// on success the object key and the report's first lines (what `kubectl
// logs` shows without fetching anything), on failure the error and the
// directory the bundle stays in.
func (u *uploader) start(ctx context.Context, service, dir string) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
		defer cancel()
		start := time.Now()
		res, err := upload.Bundle(ctx, u.url, dir)
		if err != nil {
			u.failed.Add(1)
			u.log.Error("post-mortem upload failed; the bundle stays on disk", "child", service, "postmortem", dir, "err", err.Error())
			return
		}
		u.log.Info("post-mortem uploaded", "child", service, "postmortem", dir, "url", res.URL, "key", res.Key,
			"bytes", res.Bytes, "seconds", time.Since(start).Seconds(), "report_head", res.Head)
	}()
}

// wait waits for the uploads under way and returns how many failed.
func (u *uploader) wait() int64 {
	u.wg.Wait()
	return u.failed.Load()
}
