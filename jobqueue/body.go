package jobqueue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Content codings of a request body. gzip is what clients and proxies
// compress JSON with; anything else (br, deflate, zstd, an unknown name, or
// two layers) is a 415 rather than being read as JSON: a coding that is
// ignored turns a compressed body into "malformed JSON", or worse, lets a
// body through that some other component decodes differently.
const (
	codingIdentity = ""
	codingGzip     = "gzip"
)

// errCoding is a 415 for an unsupported Content-Encoding.
type errCoding struct{ msg string }

func (e *errCoding) Error() string { return e.msg }

// contentCoding returns the body's one content coding: identity or gzip
// (x-gzip is its old name). identity entries are ignored.
func contentCoding(h http.Header) (string, error) {
	coding := codingIdentity
	for _, v := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); c {
			case "", "identity":
			case "gzip", "x-gzip":
				if coding != codingIdentity {
					return "", &errCoding{"Content-Encoding: more than one layer of gzip is not supported"}
				}
				coding = codingGzip
			default:
				return "", &errCoding{fmt.Sprintf("Content-Encoding %q is not supported: send the body as is or gzip-compressed", clip(c))}
			}
		}
	}
	return coding, nil
}

// errTooLarge is a 413: the body, or what it decompresses to, is over
// MAX_LENGTH.
type errTooLarge struct{ msg string }

func (e *errTooLarge) Error() string { return e.msg }

// readBody reads the request body into a new buffer (the collection's from
// then on: payloads alias it). MAX_LENGTH bounds the bytes on the wire and,
// for a gzip body, the decompressed bytes too: the decompressor stops one
// byte past the limit, so a gzip bomb costs at most MAX_LENGTH of memory
// and the CPU to inflate it. Errors are *errTooLarge, *errBadRequest.
func (q *Queue) readBody(w http.ResponseWriter, r *http.Request, coding string) (*bytes.Buffer, error) {
	limit := q.cfg.MaxLength
	body := http.MaxBytesReader(w, r.Body, limit)
	buf := new(bytes.Buffer)
	if coding == codingIdentity {
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength) + bytes.MinRead) // one allocation; ReadFrom wants MinRead spare
		}
		if _, err := buf.ReadFrom(body); err != nil {
			return nil, bodyError(err, limit, "")
		}
		return buf, nil
	}
	zr, _ := q.gzReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(body)
	} else {
		err = zr.Reset(body)
	}
	if zr != nil {
		defer q.gzReaders.Put(zr)
	}
	if err != nil {
		return nil, bodyError(err, limit, "gzip: ")
	}
	_, err = buf.ReadFrom(io.LimitReader(zr, limit+1))
	if err == nil && int64(buf.Len()) > limit {
		return nil, &errTooLarge{fmt.Sprintf("gzip body decompresses to more than MAX_LENGTH (%d bytes)", limit)}
	}
	if err != nil {
		return nil, bodyError(err, limit, "gzip: ")
	}
	return buf, nil
}

// bodyError classifies an error reading the body.
func bodyError(err error, limit int64, prefix string) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &errTooLarge{fmt.Sprintf("body is over MAX_LENGTH (%d bytes)", limit)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		if prefix != "" {
			return badRequest("%sbody is empty or truncated", prefix)
		}
	}
	return badRequest("reading body: %s%s", prefix, clip(err.Error()))
}
