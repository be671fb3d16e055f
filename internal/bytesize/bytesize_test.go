package bytesize

import (
	"math"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{32 << 20, "32.0 MiB"},
		{3 << 30, "3.0 GiB"},
		{5 << 40, "5.0 TiB"},
		{-2048, "-2.0 KiB"},
		{math.MinInt64, "-8.0 EiB"},
	} {
		if got := Format(tc.n); got != tc.want {
			t.Errorf("Format(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := Format(^uint64(0)); got != "16.0 EiB" {
		t.Errorf("Format(max uint64) = %q", got)
	}
}
