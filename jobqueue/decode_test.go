package jobqueue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

func TestDecodeCollection(t *testing.T) {
	for _, tc := range []struct {
		body    string
		n       int
		wantErr string
	}{
		{`{"version":"10.0","token":"t","data":[{"a":1},{"b":[1,2]}]}`, 2, ""},
		{`{"data":[]}`, 0, ""},
		{"{\"data\":[ {\n\"a\" : 1 } ]}", 1, ""},
		{`{"data":[{"a":1}`, 0, "malformed JSON"},
		{`{"version":"x"}`, 0, "data is missing"},
		{`{"data":null}`, 0, "data is missing"},
		{`{"data":{"a":1}}`, 0, "data must be an array"},
		{`{"data":[1]}`, 0, "data[0] is not an object"},
		{`{"data":[{"a":1},[]]}`, 0, "data[1] is not an object"},
		{`{"data":[{}],"version":5}`, 0, `field "version" must be string`},
		{`[1,2]`, 0, "body must be a JSON object"},
		{``, 0, "empty body"},
		{`{"data":[{}]} trailing`, 0, "malformed JSON"},
		{`{"data":[{}]}{}`, 0, "malformed JSON"},
		{`{"data":[1,{"a":}]}`, 0, "malformed JSON"}, // syntax wins over shape
		{`{"data":[{"a":1}],"data":[{},{},{}]}`, 0, `duplicate object member name "data"`},
		{`{"data":[{"a":1}],"Data":[{},{},{}]}`, 0, `duplicate member "Data"`}, // names match case-insensitively
		{`{"data":[{}],"token":"a","TOKEN":"b"}`, 0, `duplicate member "TOKEN"`},
		{`{"version":"1","data":[{}],"v\u0065rsion":"2"}`, 0, `duplicate object member name "version"`}, // escaped
		{`{"x":1,"x":2,"data":[{}]}`, 0, `duplicate object member name "x"`},
		{`{"data":[{"a":1,"a":2}]}`, 0, `duplicate object member name "a" within "/data/0"`}, // I-JSON at every depth
		{"{\"data\":[{\"a\":\"\xff\"}]}", 0, `invalid UTF-8 within "/data/0/a"`},
		{"{\"data\":[{\"\xc3\x28\":1}]}", 0, "invalid UTF-8"},
		{"{\"data\":[{}],\"version\":\"\xed\xa0\x80\"}", 0, "invalid UTF-8"}, // an encoded surrogate
		{`{"data":[{"a":"\ud800"}]}`, 0, "invalid surrogate pair"},
		{`{"data":[{"a":"\udc00\ud800"}]}`, 0, "invalid surrogate pair"},
		{"{\"data\":[{}],\"token\":\"\x98\"}", 0, "invalid UTF-8"},
		{`{"data":[{"a":"\ud83d\ude00 \u00e9"}]}`, 1, ""}, // a valid pair and escapes are fine
		{`{"d\u0061ta":[{}],"Version":"x"}`, 1, ""},       // escaped and case-folded names
		{`{"data":[{"s":"\u00e9 \"}\"","n":[{"x":null}]}],"other":{"data":1}}`, 1, ""},
		{`{"data":[{}],"token":7}`, 0, `field "token" must be string`},
		{`{"data":"x"}`, 0, "data must be an array of objects, got string"},
		{`"x"`, 0, "body must be a JSON object, got string"},
	} {
		d, err := decodeCollection([]byte(tc.body))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want it to contain %q", tc.body, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.body, err)
			continue
		}
		if len(d.payloads) != tc.n {
			t.Errorf("%q: %d payloads, want %d", tc.body, len(d.payloads), tc.n)
		}
	}
}

// FuzzDecodeCollection: decoding never panics, and whatever it accepts is a
// list of JSON objects that survive a round trip.
func FuzzDecodeCollection(f *testing.F) {
	for _, s := range []string{
		`{"version":"10.0.19045","token":"t","data":[{"a":1},{"kind":"x","b":{"c":[1,2,3]}}]}`,
		`{"data":[]}`, `{"data":[1]}`, `{"data":[{"a":1}`, `null`, `[]`, `{"data":"x"}`,
		`{"data":[{"s":"\u00e9\n"}]}`,
		`{"DATA":[{}],"d\u0061ta":[{"a":1}],"Version":"\ud83d\ude00","toKen":"x"}`,
		`{"d\u0061ta":[{}],"Version":"\ud83d\ude00","toKen":"x"}`,
		// Hostile inputs of issue 13: invalid UTF-8, lone surrogates,
		// duplicate names (top level, case-folded, nested).
		"{\"data\":[{\"a\":\"\xff\xfe\"}]}", "{\"data\":[{\"\xc0\xaf\":1}]}",
		"{\"data\":[{}],\"version\":\"\xed\xa0\x80\"}",
		`{"data":[{"a":"\ud800"}]}`, `{"data":[{"a":"\udfff\ud800x"}]}`,
		`{"data":[{"a":1}],"data":[{},{}]}`, `{"data":[{"a":1}],"DaTa":[{},{}]}`,
		`{"token":"a","data":[{}],"Token":"b"}`, `{"data":[{"k":1,"k":1}]}`,
		`{"data":[{"n":{"k":[],"k":{}}}]}`,
		"{\"data\" : [ {\"a\" :\n 1} ] , \"version\":null}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := decodeCollection(body)
		if err != nil {
			if _, ok := err.(*errBadRequest); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			// encoding/json must have refused it too, unless it is
			// not I-JSON (invalid UTF-8, a duplicate name: refused on
			// purpose, encoding/json lets them through).
			if !iJSON(body) {
				return
			}
			var old struct {
				Version string             `json:"version"`
				Token   string             `json:"token"`
				Data    *[]json.RawMessage `json:"data"`
			}
			if json.Unmarshal(body, &old) == nil && old.Data != nil && !slices.ContainsFunc(*old.Data, func(p json.RawMessage) bool { return p[0] != '{' }) {
				t.Fatalf("refused %q (%v), encoding/json accepted it", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if !iJSON(body) {
			t.Fatalf("accepted %q: invalid UTF-8 or a duplicate name", body)
		}
		// What encoding/json made of it (the decoder this one replaced):
		// the same elements, byte for byte, and the same version.
		var old struct {
			Version string             `json:"version"`
			Token   string             `json:"token"`
			Data    *[]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &old); err != nil || old.Data == nil {
			t.Fatalf("accepted %q, encoding/json did not: %v", body, err)
		}
		if len(*old.Data) != len(d.payloads) {
			t.Fatalf("%q: %d payloads, encoding/json %d", body, len(d.payloads), len(*old.Data))
		}
		for i, p := range *old.Data {
			if string(p) != string(d.payloads[i]) {
				t.Fatalf("%q: data[%d] = %q, encoding/json %q", body, i, d.payloads[i], p)
			}
		}
		var version string
		if d.version != nil {
			if err := json.Unmarshal(d.version, &version); err != nil {
				t.Fatalf("%q: version %q: %v", body, d.version, err)
			}
		}
		if version != old.Version || d.token != old.Token {
			t.Fatalf("%q: version %q token %q, encoding/json %q %q", body, version, d.token, old.Version, old.Token)
		}
		for i, p := range d.payloads {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(p, &m); err != nil || m == nil {
				t.Fatalf("accepted data[%d] = %q is not an object: %v", i, p, err)
			}
		}
	})
}

// iJSON reports whether body is I-JSON (RFC 7493: valid UTF-8, no lone
// surrogates, no duplicate names) and its top level does not repeat data,
// version or token in any letter case (which the decoder matches
// case-insensitively). Non-JSON reports true: that is not why it failed.
func iJSON(body []byte) bool {
	if !json.Valid(body) {
		return true
	}
	if !jsontext.Value(body).IsValid() { // strict by default
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return true
	}
	seen := map[string]bool{}
	for name := range top {
		k := strings.ToLower(name)
		if (k == "data" || k == "version" || k == "token") && seen[k] {
			return false
		}
		seen[k] = true
	}
	return true
}

// An escaped member name after others must not be unescaped into the body:
// names without escapes alias the body, and the payloads alias it too.
// (Found by FuzzDecodeCollection: an escaped key after "data" overwrote the
// stored payload bytes.)
func TestDecodeEscapedNamesLeaveBodyIntact(t *testing.T) {
	for _, body := range []string{
		`{"version":"10.0.19045","tok\n":"t","data":[{"a":1}]}`,
		`{"data":[{"a":1},{"b":"two"}],"a-much-longer-escaped-name-\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9":1}`,
		`{"x":1,"d\u0061ta":[{"keep":"me"}],"\u0076ersion":"v"}`,
	} {
		orig := []byte(body)
		in := bytes.Clone(orig)
		d, err := decodeCollection(in)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if !bytes.Equal(in, orig) {
			t.Errorf("decoding changed the body:\n got %s\nwant %s", in, orig)
		}
		var old struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(orig, &old); err != nil {
			t.Fatal(err)
		}
		for i, p := range d.payloads {
			if string(p) != string(old.Data[i]) {
				t.Errorf("%s: payload %d = %s, want %s", body, i, p, old.Data[i])
			}
		}
	}
}

// benchBody is bench/ingest.sh's collection: 10 payloads of about 250
// bytes (the same shape as BenchmarkIngest's).
func benchBody() []byte {
	var b strings.Builder
	b.WriteString(`{"version":"10.0.19045","token":"bench","data":[`)
	for i := 1; i <= 10; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"seq":%d,"host":"web-%02d.example.internal","path":"/api/v2/orders/%06d/items","status":200,"bytes":%d,"duration_ms":%d.%03d,"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)","tags":["bench","wardgate","ingest"],"note":"bench payload %d"}`,
			i, i, i*7919, i*1031, i, i*37%1000, i)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// BenchmarkDecodeCollection is the decoder alone on benchBody, with a
// reused decoder as the handler does.
func BenchmarkDecodeCollection(b *testing.B) {
	body := benchBody()
	dec := jsontext.NewDecoder(http.NoBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeBuffer(dec, bytes.NewBuffer(body)); err != nil {
			b.Fatal(err)
		}
	}
}
