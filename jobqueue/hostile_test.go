package jobqueue_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/klauspost/compress/gzip"
)

// TestCollectionLargerThanQueue: a collection with more payloads than
// MAX_QUEUE can never be admitted, so it is a 413 that says so, not a 503
// that a client would retry forever; one that fits the queue but not the
// room left now is still a 503.
func TestCollectionLargerThanQueue(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueue = 5
	sink := newGateSink(fileSink(t))
	sink.Close() // nothing is stored: the budget stays taken
	_, url := startQueue(t, cfg, sink)
	t.Cleanup(sink.Open)

	r, err := post(t, nil, url, collection(6, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if msg := fmt.Sprint(r.body["error"]); r.code != 413 || !strings.Contains(msg, "MAX_QUEUE=5") || r.header.Get("Retry-After") != "" {
		t.Fatalf("6 payloads with MAX_QUEUE=5: %d %q Retry-After %q; want 413 naming MAX_QUEUE, no Retry-After", r.code, msg, r.header.Get("Retry-After"))
	}
	if r, err := post(t, nil, url, collection(5, "fits")); err != nil || r.code != 202 {
		t.Fatalf("5 payloads: %+v %v", r, err)
	}
	if r, err := post(t, nil, url, collection(1, "later")); err != nil || r.code != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("1 payload with the queue full: %+v %v; want 503 + Retry-After", r, err)
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestHostileIngest: the input cases of issue 13 over real HTTP. Invalid
// UTF-8 and duplicate names are 400 (stored lines must be valid,
// unambiguous JSON); gzip bodies are decompressed with MAX_LENGTH applied
// to the decompressed bytes (a bomb is 413); any other content coding is
// 415; a present but bad Authorization header is 401 whatever the body's
// token field says. What is accepted is stored, and every stored line is
// valid JSON.
func TestHostileIngest(t *testing.T) {
	cfg := testConfig()
	cfg.APITokens = []string{"tok"}
	cfg.MaxLength = 64 << 10
	file := fileSink(t)
	q, url := startQueue(t, cfg, file)

	good := collection(3, "gz")
	bomb := gzipped(t, append(append([]byte(`{"token":"tok","data":[{"pad":"`), bytes.Repeat([]byte("A"), 50<<20)...), `"}]}`...))
	if len(bomb) > int(cfg.MaxLength) {
		t.Fatalf("the bomb is %d bytes compressed, over MAX_LENGTH itself", len(bomb))
	}
	justOver := gzipped(t, append(append([]byte(`{"token":"tok","data":[{"pad":"`), bytes.Repeat([]byte("B"), int(cfg.MaxLength))...), `"}]}`...))
	twice := gzipped(t, gzipped(t, good))
	accepted := 0
	for _, tc := range []struct {
		name   string
		body   []byte
		hdr    []string
		code   int
		errHas string
	}{
		{name: "gzip", body: gzipped(t, good), hdr: []string{"Content-Encoding", "gzip"}, code: 202},
		{name: "x-gzip, upper case", body: gzipped(t, good), hdr: []string{"Content-Encoding", "X-GZIP"}, code: 202},
		{name: "identity", body: good, hdr: []string{"Content-Encoding", "identity"}, code: 202},
		{name: "gzip bomb", body: bomb, hdr: []string{"Content-Encoding", "gzip"}, code: 413, errHas: "decompresses to more than MAX_LENGTH"},
		{name: "gzip just over the limit", body: justOver, hdr: []string{"Content-Encoding", "gzip"}, code: 413, errHas: "MAX_LENGTH"},
		{name: "gzip header, plain body", body: good, hdr: []string{"Content-Encoding", "gzip"}, code: 400, errHas: "gzip"},
		{name: "gzip truncated", body: gzipped(t, good)[:20], hdr: []string{"Content-Encoding", "gzip"}, code: 400, errHas: "gzip"},
		{name: "gzip then garbage", body: append(gzipped(t, good), "garbage"...), hdr: []string{"Content-Encoding", "gzip"}, code: 400, errHas: "gzip"},
		{name: "gzip twice", body: twice, hdr: []string{"Content-Encoding", "gzip, gzip"}, code: 415, errHas: "more than one layer"},
		{name: "br", body: good, hdr: []string{"Content-Encoding", "br"}, code: 415, errHas: `"br"`},
		{name: "deflate", body: good, hdr: []string{"Content-Encoding", "deflate"}, code: 415},
		{name: "zstd", body: good, hdr: []string{"Content-Encoding", "zstd"}, code: 415},
		{name: "unknown", body: good, hdr: []string{"Content-Encoding", "rot13"}, code: 415},
		{name: "gzip and br", body: gzipped(t, good), hdr: []string{"Content-Encoding", "gzip, br"}, code: 415},
		{name: "latin-1 charset", body: good, hdr: []string{"Content-Type", "application/json; charset=iso-8859-1"}, code: 415, errHas: "UTF-8"},
		{name: "utf-16 charset", body: good, hdr: []string{"Content-Type", "application/json; charset=UTF-16"}, code: 415, errHas: "UTF-8"},
		{name: "UTF-8 charset, any case", body: good, hdr: []string{"Content-Type", "application/json; charset=UTF-8"}, code: 202},
		{name: "invalid UTF-8 in a payload", body: []byte("{\"token\":\"tok\",\"data\":[{\"a\":\"\xff\xfe\"}]}"), code: 400, errHas: "invalid UTF-8"},
		{name: "invalid UTF-8 in a name", body: []byte("{\"token\":\"tok\",\"data\":[{\"\xc3\x28\":1}]}"), code: 400, errHas: "invalid UTF-8"},
		{name: "invalid UTF-8 in the version", body: []byte("{\"token\":\"tok\",\"version\":\"\xed\xa0\x80\",\"data\":[{}]}"), code: 400, errHas: "invalid UTF-8"},
		{name: "lone surrogate escape", body: []byte(`{"token":"tok","data":[{"a":"\ud800"}]}`), code: 400, errHas: "surrogate"},
		{name: "invalid UTF-8 inside gzip", body: gzipped(t, []byte("{\"token\":\"tok\",\"data\":[{\"a\":\"\xff\"}]}")), hdr: []string{"Content-Encoding", "gzip"}, code: 400, errHas: "invalid UTF-8"},
		{name: "duplicate data", body: []byte(`{"token":"tok","data":[{"a":1}],"data":[{"b":1}]}`), code: 400, errHas: "duplicate"},
		{name: "duplicate data, other case", body: []byte(`{"token":"tok","data":[{"a":1}],"Data":[{"b":1}]}`), code: 400, errHas: "duplicate"},
		{name: "duplicate token", body: []byte(`{"token":"nope","data":[{"a":1}],"token":"tok"}`), code: 400, errHas: "duplicate"},
		{name: "duplicate name in a payload", body: []byte(`{"token":"tok","data":[{"a":1,"a":2}]}`), code: 400, errHas: `within "/data/0"`},
		{name: "bad bearer, valid token field", body: good, hdr: []string{"Authorization", "Bearer nope"}, code: 401, errHas: "Authorization header"},
		{name: "basic scheme, valid token field", body: good, hdr: []string{"Authorization", "Basic dG9rOg=="}, code: 401, errHas: "Bearer"},
		{name: "empty bearer, valid token field", body: good, hdr: []string{"Authorization", "Bearer "}, code: 401},
		{name: "bearer in lower case", body: []byte(`{"data":[{"a":1}]}`), hdr: []string{"Authorization", "bearer tok"}, code: 202},
		{name: "good bearer, wrong token field", body: []byte(`{"token":"nope","data":[{"a":1}]}`), hdr: []string{"Authorization", "Bearer tok"}, code: 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := post(t, nil, url, tc.body, tc.hdr...)
			if err != nil {
				t.Fatal(err)
			}
			msg := fmt.Sprint(r.body["error"])
			if r.code != tc.code || (tc.errHas != "" && !strings.Contains(msg, tc.errHas)) {
				t.Fatalf("%d %q; want %d with %q", r.code, msg, tc.code, tc.errHas)
			}
			switch r.code {
			case 202:
				accepted += int(r.body["accepted"].(float64))
			case 415:
				if len(tc.hdr) > 0 && tc.hdr[0] == "Content-Encoding" && r.header.Get("Accept-Encoding") != "gzip" {
					t.Errorf("415 without Accept-Encoding: gzip")
				}
			case 401:
				if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q", ch)
				}
			}
		})
	}
	if err := q.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored := readBucket(t, file.Bucket) // parseObject fails on a line that is not JSON
	if got := countLines(stored); got != accepted {
		t.Fatalf("%d lines stored, %d payloads accepted", got, accepted)
	}
	for _, lines := range stored {
		for _, l := range lines {
			if !utf8.Valid(l.Payload) || !jsontext.Value(l.Payload).IsValid() {
				t.Errorf("stored payload %q is not I-JSON", l.Payload)
			}
		}
	}
}
