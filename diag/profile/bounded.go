package profile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/google/pprof/profile"
)

// MaxBody bounds what a diag command reads from an admin listener (a
// profile, a debug=2 goroutine dump, /metrics): a goroutine dump of 100k
// goroutines is ~100 MiB. The target URL is the user's input, and whatever
// answers there may stream without end.
const MaxBody = 512 << 20

// MaxProfile bounds the decompressed size of a pprof profile: the gzip
// layer of a 512 MiB body (or of a file given to `profile diff`) could
// otherwise expand a thousandfold in memory.
const MaxProfile = 1 << 30

// ErrTooLarge is wrapped when a body or profile exceeds its bound.
var ErrTooLarge = errors.New("too large")

// readBounded reads r up to limit bytes; more is ErrTooLarge.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// Parse parses a pprof profile (gzipped or not) from r with both bounds
// applied: at most MaxBody bytes read, at most MaxProfile bytes once
// decompressed. Use it instead of profile.Parse on any input.
func Parse(r io.Reader) (*profile.Profile, error) {
	raw, err := readBounded(r, MaxBody)
	if err != nil {
		return nil, err
	}
	return ParseData(raw)
}

// ParseData is Parse for bytes already in memory.
func ParseData(raw []byte) (*profile.Profile, error) {
	return parseDataLimit(raw, MaxProfile)
}

func parseDataLimit(raw []byte, limit int64) (*profile.Profile, error) {
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("decompressing profile: %w", err)
		}
		data, err := readBounded(zr, limit)
		if err != nil {
			return nil, fmt.Errorf("decompressing profile: %w", err)
		}
		return profile.ParseUncompressed(data)
	}
	return profile.ParseData(raw)
}
