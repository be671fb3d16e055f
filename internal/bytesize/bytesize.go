// Package bytesize formats byte counts for people: the one formatter the
// diag reports, `diag capture` and `diag crash-setup` share, so a size
// reads the same everywhere. (diag/profile keeps pprof's own B/kB/MB style
// so its `top` matches `go tool pprof`.)
package bytesize

import "fmt"

// Format renders n in binary units with one decimal: "512 B", "1.5 KiB",
// "3.0 GiB". Negative counts (a shrinking heap) keep their sign.
func Format[T ~int | ~int64 | ~uint64](n T) string {
	if n < 0 {
		// -n of the most negative int64 overflows; uint64 of it does not.
		return "-" + format(uint64(-(n+1))+1)
	}
	return format(uint64(n))
}

func format(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
