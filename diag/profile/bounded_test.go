package profile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"

	"github.com/google/pprof/profile"
)

// A body that never ends and a gzip bomb are refused at their bound
// instead of being read into memory whole.
func TestBoundedReads(t *testing.T) {
	endless := io.MultiReader(bytes.NewReader([]byte("x")), zeroReader{})
	if _, err := readBounded(endless, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless body: %v, want ErrTooLarge", err)
	}

	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	if _, err := io.CopyN(zw, zeroReader{}, 64<<20); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	if _, err := parseDataLimit(bomb.Bytes(), 8<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d-byte gzip of 64 MiB: %v, want ErrTooLarge", bomb.Len(), err)
	}

	// A real profile still parses, gzipped and not.
	p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "goroutine", Unit: "count"}}, PeriodType: &profile.ValueType{Type: "goroutine", Unit: "count"}}
	var gz bytes.Buffer
	if err := p.Write(&gz); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseData(gz.Bytes()); err != nil {
		t.Fatalf("gzipped profile: %v", err)
	}
	var plain bytes.Buffer
	if err := p.WriteUncompressed(&plain); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(&plain); err != nil {
		t.Fatalf("uncompressed profile: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
