package capture

import (
	"context"
	"errors"
)

// Pre-copy: copy rounds while the process runs, with writes tracked by the
// tracker (tracker_linux_amd64.go). It is its own phase because it is
// optional (Options.PreCopy, and only when write tracking is available) and
// may fail without failing the capture: the final stop then copies
// everything, so nothing here may leave state that stop relies on.

// Pre-copy tuning: live rounds cost the process no stop, only the
// capture's time and a write fault per page it writes meanwhile.
const (
	maxPreCopyRounds = 5    // live copy passes, the first full one included
	smallDirtyPages  = 2048 // 8 MiB: little enough to leave to the final stop
)

// copyLive copies spans while the process runs and remembers the pages it
// could not read, so the next round copies them again.
func (c *copier) copyLive(ctx context.Context, copies []span) error {
	_, skipped, err := readMemoryParallel(ctx, c.pid, copies, c.pageSize)
	if err != nil {
		return err
	}
	for _, a := range skipped {
		if c.bad == nil {
			c.bad = map[uint64]bool{}
		}
		c.bad[a] = true
	}
	return nil
}

// tryPreCopy copies memory while the process runs (iterative pre-copy, as
// CRIU and VM live migration do), leaving only what is written meanwhile
// for the final stop. Writes are tracked with a write-protecting
// userfaultfd (see tracker): every scan for written pages re-protects
// them in the same step, so:
//
//   - round 1 write-protects every page, then copies every wanted page;
//   - each later round collects (and re-protects) the pages written since
//     the previous scan, then copies them and any page new to the store;
//   - the final stop copies the pages written since the last scan, those
//     new to the store, and everything in mappings not tracked.
//
// Every copy of a page starts after the scan that last protected it, so a
// page not written by the final stop still holds what was copied. Rounds
// go on while the written set shrinks and is worth copying live. If write
// tracking is not available, or pre-copy fails for a reason the
// stop-and-copy path would not hit, the store is dropped and the reason
// recorded; only errors that would fail the final stop as well are
// returned.
func (c *copier) tryPreCopy(ctx context.Context) error {
	fatal := func(err error) bool {
		return ctx.Err() != nil || errors.Is(err, ErrNoProcess) || errors.Is(err, ErrPermission) || errors.Is(err, ErrTraced)
	}
	tr, err := openTracker(ctx, c)
	if err != nil {
		if fatal(err) {
			return err
		}
		c.stats.PreCopyUnavailableReason = err.Error()
		return nil
	}
	c.tr = tr
	err = c.preCopy(ctx)
	if err == nil {
		return nil
	}
	if fatal(err) {
		return err
	}
	c.stats.PreCopyUnavailableReason = "pre-copy failed, copied everything while stopped: " + err.Error()
	c.store, c.bad, c.tr = nil, nil, nil
	c.stats.PagesCopiedLive, c.stats.PreCopyRounds = 0, 0
	tr.Close()
	return nil
}

func (c *copier) preCopy(ctx context.Context) error {
	last := int64(-1)
	for c.stats.PreCopyRounds < maxPreCopyRounds {
		sc, err := c.trackedScan()
		if err != nil {
			return err
		}
		copies, n := c.plan(sc, false)
		if err := c.copyLive(ctx, copies); err != nil {
			return err
		}
		c.stats.PreCopyRounds++
		c.stats.PagesCopiedLive += n
		if last >= 0 && (n <= smallDirtyPages || n*10 >= last*9) {
			break // small enough for the stop, or not shrinking
		}
		last = n
	}
	return nil
}

// trackedScan registers new mappings for tracking, collects (and
// re-protects) the pages written since the last call, then reads maps
// and pagemap, and marks in the entries the pages to copy again: those
// written and those in mappings not tracked.
func (c *copier) trackedScan() (*pageScan, error) {
	maps, err := parseMaps(c.pid)
	if err != nil {
		return nil, procErr(c.pid, err)
	}
	if c.tr == nil {
		return c.scan(maps, nil) // nothing known clean
	}
	c.tr.register(maps)
	clean, err := c.tr.clean(maps)
	if err != nil {
		return nil, err
	}
	// Mappings may have changed since maps was read: read them again
	// after the written pages were collected. A page mapped in between
	// is new to the store, or outside the ranges clean covers.
	if maps, err = parseMaps(c.pid); err != nil {
		return nil, procErr(c.pid, err)
	}
	return c.scan(maps, clean)
}
