package jobqueue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// decoded is a validated collection. version is the "version" member as
// sent (a JSON string, quotes included; nil when absent or null) and each
// payload is the element as sent: all of them alias the request body, which
// the collection owns from then on, so decoding copies nothing.
type decoded struct {
	version  []byte
	token    string
	payloads []json.RawMessage
}

// errBadRequest marks decoding errors; the message is meant for the client.
type errBadRequest struct{ msg string }

func (e *errBadRequest) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &errBadRequest{fmt.Sprintf(format, args...)}
}

// decodeOptions make the decoder accept I-JSON (RFC 7493) only: strings
// (names included) must be valid UTF-8 with no lone surrogate escapes, and
// no object may repeat a member name, at any depth. Either would be stored
// as sent, and the stored NDJSON would then be invalid JSON, or JSON that
// two readers understand differently (which duplicate wins). Both checks
// are part of the one streaming pass (about a microsecond per 2.5 KB
// collection, see BenchmarkDecodeCollection).
var decodeOptions = []jsontext.Options{
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
}

// decodeCollection parses and validates one collection with a fresh
// decoder; the queue reuses decoders through (*Queue).decode.
func decodeCollection(body []byte) (decoded, error) {
	return decodeBuffer(jsontext.NewDecoder(http.NoBody), bytes.NewBuffer(body))
}

// decodeBuffer parses and validates one collection, read from bb (whose
// bytes the payloads then alias): the body must be a JSON object whose
// "data" is an array of JSON objects. An empty array is valid (nothing to
// queue).
//
// It is one streaming pass of jsontext (github.com/go-json-experiment/json,
// the encoding/json/v2 code without GOEXPERIMENT): syntax is checked as the
// tokens go by, element values are sliced from the body rather than built
// into maps or copied, and unknown members are skipped. A problem with the
// shape (data not an array, an element not an object, version not a
// string) is reported only once the whole body is known to be valid JSON,
// so a truncated or malformed body is always "malformed JSON", as
// json.Unmarshal reported it.
func decodeBuffer(d *jsontext.Decoder, bb *bytes.Buffer) (decoded, error) {
	body := bb.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		return decoded{}, badRequest("empty body")
	}
	d.Reset(bb, decodeOptions...)
	defer d.Reset(http.NoBody) // do not keep the body alive from a pooled decoder

	var (
		out     decoded
		shape   error // the first shape problem, reported if the syntax is good
		hasData bool
	)
	setShape := func(format string, args ...any) {
		if shape == nil {
			shape = badRequest(format, args...)
		}
	}
	if k := d.PeekKind(); k != '{' {
		if err := d.SkipValue(); err != nil {
			return decoded{}, syntaxError(err)
		}
		setShape("body must be a JSON object, got %s", kindName(k))
	} else {
		if _, err := d.ReadToken(); err != nil {
			return decoded{}, syntaxError(err)
		}
		var (
			scratch []byte
			seen    [3]bool // data, version, token: names match case-insensitively
		)
		once := func(i int, name []byte) {
			if seen[i] {
				setShape("duplicate member %q (names are matched case-insensitively)", name)
			}
			seen[i] = true
		}
		for d.PeekKind() != '}' {
			raw, err := d.ReadValue() // the member name, quoted
			if err != nil {
				return decoded{}, syntaxError(err)
			}
			name := unquoteName(&scratch, raw)
			switch {
			case bytes.EqualFold(name, []byte("data")):
				once(0, name)
				payloads, ok, err := readData(d, body, setShape)
				if err != nil {
					return decoded{}, err
				}
				out.payloads, hasData = payloads, ok
			case bytes.EqualFold(name, []byte("version")):
				once(1, name)
				v, isNull, err := readString(d, "version", setShape)
				if err != nil {
					return decoded{}, err
				}
				if !isNull {
					out.version = v
				}
			case bytes.EqualFold(name, []byte("token")):
				once(2, name)
				v, isNull, err := readString(d, "token", setShape)
				if err != nil {
					return decoded{}, err
				}
				if !isNull {
					s, uerr := jsontext.AppendUnquote(nil, v)
					if uerr != nil { // cannot happen: the decoder validated it
						return decoded{}, syntaxError(uerr)
					}
					out.token = string(s)
				}
			default:
				if err := d.SkipValue(); err != nil {
					return decoded{}, syntaxError(err)
				}
			}
		}
		if _, err := d.ReadToken(); err != nil { // '}' (or the syntax error)
			return decoded{}, syntaxError(err)
		}
	}
	if _, err := d.ReadToken(); err != io.EOF {
		if err == nil {
			err = errors.New("more than one JSON value in the body")
		}
		return decoded{}, syntaxError(err)
	}
	if shape != nil {
		return decoded{}, shape
	}
	if !hasData {
		return decoded{}, badRequest("data is missing (want an array of objects)")
	}
	return out, nil
}

// readData reads the value of "data". ok is false for null (missing).
// Elements are sliced from body by the decoder's input offset.
func readData(d *jsontext.Decoder, body []byte, setShape func(string, ...any)) (payloads []json.RawMessage, ok bool, err error) {
	switch k := d.PeekKind(); k {
	case 'n':
		_, err := d.ReadValue()
		return nil, false, syntaxError(err)
	case '[':
	default:
		if err := d.SkipValue(); err != nil {
			return nil, false, syntaxError(err)
		}
		setShape("data must be an array of objects, got %s", kindName(k))
		return nil, false, nil
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, false, syntaxError(err)
	}
	payloads = make([]json.RawMessage, 0, 16)
	for i := 0; ; i++ {
		k := d.PeekKind()
		if k == ']' {
			break
		}
		if k != '{' {
			if err := d.SkipValue(); err != nil {
				return nil, false, syntaxError(err)
			}
			setShape("data[%d] is not an object", i)
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			return nil, false, syntaxError(err)
		}
		end := int(d.InputOffset())
		payloads = append(payloads, json.RawMessage(body[end-len(v):end:end]))
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, false, syntaxError(err)
	}
	return payloads, true, nil
}

// readString reads a member that must be a JSON string (or null, which
// leaves it unset, as encoding/json did); v is the value as sent, quoted.
func readString(d *jsontext.Decoder, field string, setShape func(string, ...any)) (v []byte, isNull bool, err error) {
	k := d.PeekKind()
	raw, err := d.ReadValue()
	if err != nil {
		return nil, false, syntaxError(err)
	}
	switch k {
	case '"':
		return bytes.Clone(raw), false, nil
	case 'n':
		return nil, true, nil
	}
	setShape("field %q must be string, got %s", field, kindName(k))
	return nil, true, nil
}

// unquoteName returns a member name's text; names without escapes (all of
// them, in practice) are not copied.
//
// The result may alias raw (and so the request body, which payloads alias
// too): callers only read it. Unescaping goes into *scratch, never into the
// previous result, which could be a window of the body.
func unquoteName(scratch *[]byte, raw []byte) []byte {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	s, err := jsontext.AppendUnquote((*scratch)[:0], raw)
	*scratch = s
	if err != nil {
		return raw
	}
	return s
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "bool"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "nothing"
}

// syntaxError turns a jsontext error into the client's 400 message.
func syntaxError(err error) error {
	if err == nil {
		return nil
	}
	var se *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("malformed JSON: unexpected end of body (truncated?)")
	case errors.As(err, &se):
		// The whole message names where (a JSON pointer) and what: bad
		// syntax, invalid UTF-8, a duplicate name.
		return badRequest("malformed JSON at byte %d: %s", se.ByteOffset, clip(strings.TrimPrefix(se.Error(), "jsontext: ")))
	}
	return badRequest("malformed JSON: %s", clip(err.Error()))
}

// clip bounds an error message that may quote the client's bytes (a
// member name can be as long as the body).
func clip(msg string) string {
	const maxMsg = 300
	if len(msg) <= maxMsg {
		return msg
	}
	return strings.ToValidUTF8(msg[:maxMsg], "") + "…"
}
