package jobqueue

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/klauspost/compress/gzip"
)

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// FuzzReadBody: whatever the body and Content-Encoding, reading it never
// panics, never returns more than MAX_LENGTH bytes, and fails only with a
// 400, 413 or 415 kind of error; a gzip body that is read back is what
// was compressed.
func FuzzReadBody(f *testing.F) {
	const limit = 4096
	doc := []byte(`{"data":[{"a":1}]}`)
	f.Add(doc, "")
	f.Add(gz(doc), "gzip")
	f.Add(gz(doc), "x-gzip, identity")
	f.Add(gz(gz(doc)), "gzip, gzip")
	f.Add(append(gz(doc), gz(doc)...), "gzip")          // two members
	f.Add(append(gz(doc), "trailing"...), "gzip")       // garbage after the member
	f.Add(gz(bytes.Repeat([]byte("A"), 1<<20)), "gzip") // a bomb: 1 MiB from ~1 KB
	f.Add(gz(doc)[:10], "gzip")
	f.Add(doc, "br")
	f.Add(doc, "deflate")
	f.Add(doc, "GZIP ,  ,identity")
	f.Add([]byte{}, "gzip")
	q, err := New(func() Config { c := DefaultConfig(); c.MaxLength = limit; return c }(), nopSink{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, encoding string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/payloads", bytes.NewReader(body))
		r.Header.Set("Content-Encoding", encoding)
		coding, err := contentCoding(r.Header)
		if err != nil {
			var ce *errCoding
			if !errors.As(err, &ce) {
				t.Fatalf("coding error of type %T: %v", err, err)
			}
			return
		}
		buf, err := q.readBody(httptest.NewRecorder(), r, coding)
		if err != nil {
			var (
				tl *errTooLarge
				br *errBadRequest
			)
			if !errors.As(err, &tl) && !errors.As(err, &br) {
				t.Fatalf("read error of type %T: %v", err, err)
			}
			return
		}
		if buf.Len() > limit {
			t.Fatalf("read %d bytes, over the %d limit", buf.Len(), limit)
		}
		if coding == codingIdentity && !bytes.Equal(buf.Bytes(), body) {
			t.Fatalf("identity body changed")
		}
		if coding == codingGzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("accepted a body gzip cannot open: %v", err)
			}
			var want bytes.Buffer
			if _, err := want.ReadFrom(zr); err != nil || !bytes.Equal(want.Bytes(), buf.Bytes()) {
				t.Fatalf("gzip body read as %q, want %q (%v)", buf.Bytes(), want.Bytes(), err)
			}
		}
	})
}

type nopSink struct{}

func (nopSink) Put(context.Context, string, []byte, string) error { return nil }
