package capture

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkCapture measures what a capture costs the captured process:
// the pause (pause-ms/op) and the core's size on disk (core-MiB-on-disk),
// native against gcore, on a small (~10 MiB RSS) and a large (~1 GiB RSS)
// process of 1000 goroutines. Run it with -benchtime=1x or 3x: every
// iteration writes a full core (gcore writes gigabytes).
//
//	go test -run '^$' -bench Capture -benchtime 3x ./diag/capture
func BenchmarkCapture(b *testing.B) {
	for _, size := range []struct {
		name   string
		heapMB int
	}{{"rss10MiB", 2}, {"rss1GiB", 1024}} {
		// One process per size, shared by both methods; its cleanup runs
		// when the whole benchmark ends.
		tg := startTarget(b, 1000, size.heapMB)
		for _, method := range []string{MethodNative, MethodGcore} {
			b.Run(size.name+"/"+method, func(b *testing.B) {
				var pause, longest, paused, disk, apparent, copied float64
				for i := 0; i < b.N; i++ {
					dir := filepath.Join(b.TempDir(), fmt.Sprintf("bundle%d", i))
					bu, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: dir, Method: method})
					if err != nil {
						b.Fatal(err)
					}
					pause += bu.Meta.PauseMS
					if st, err := ReadNativeStats(dir); err == nil {
						longest += st.LongestPauseMS
						paused += float64(st.PagesCopiedPaused)
					}
					disk += float64(bu.Meta.CoreBytesOnDisk)
					apparent += float64(bu.Meta.CoreBytesApparent)
					copied += float64(bu.Meta.MemoryBytesCopied)
					os.RemoveAll(dir) // do not fill the disk with cores
				}
				tg.ping(b)
				n := float64(b.N)
				b.ReportMetric(pause/n, "pause-ms/op")
				if method == MethodNative {
					b.ReportMetric(longest/n, "longest-stop-ms/op")
					b.ReportMetric(paused/n*float64(os.Getpagesize())/(1<<20), "MiB-copied-stopped/op")
				}
				b.ReportMetric(disk/n/(1<<20), "core-MiB-on-disk")
				b.ReportMetric(apparent/n/(1<<20), "core-MiB-apparent")
				b.ReportMetric(float64(rssBytes(b, tg.pid))/(1<<20), "rss-MiB")
			})
		}
	}
}

// rssBytes is VmRSS of pid.
func rssBytes(b *testing.B, pid int) int64 {
	lines, err := readLines(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
