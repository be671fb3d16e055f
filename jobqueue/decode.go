package jobqueue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// wireCollection is the body of POST /v1/payloads, as in the design notes.
type wireCollection struct {
	Version string             `json:"version"`
	Token   string             `json:"token"`
	Data    *[]json.RawMessage `json:"data"`
}

// decoded is a validated collection. Payloads are copies of the elements as
// sent (json.RawMessage copies while unmarshalling), so the request body
// buffer can be reused as soon as decoding returns.
type decoded struct {
	version  string
	token    string
	payloads []json.RawMessage
}

// errBadRequest marks decoding errors; the message is meant for the client.
type errBadRequest struct{ msg string }

func (e *errBadRequest) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &errBadRequest{fmt.Sprintf(format, args...)}
}

// decodeCollection parses and validates one collection: the body must be a
// JSON object whose "data" is an array of JSON objects. An empty array is
// valid (nothing to queue).
//
// json.Unmarshal checks the syntax of the whole body before decoding, so a
// truncated or malformed body never yields a partial collection.
func decodeCollection(body []byte) (decoded, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return decoded{}, badRequest("empty body")
	}
	var w wireCollection
	if err := json.Unmarshal(body, &w); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return decoded{}, badRequest("malformed JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			if te.Field == "" {
				return decoded{}, badRequest("body must be a JSON object, got %s", te.Value)
			}
			if te.Field == "data" || bytes.HasPrefix([]byte(te.Field), []byte("data.")) {
				return decoded{}, badRequest("data must be an array of objects, got %s", te.Value)
			}
			return decoded{}, badRequest("field %q must be %s, got %s", te.Field, te.Type, te.Value)
		default:
			return decoded{}, badRequest("malformed JSON: %v", err)
		}
	}
	if w.Data == nil {
		return decoded{}, badRequest("data is missing (want an array of objects)")
	}
	for i, el := range *w.Data {
		if len(el) == 0 || el[0] != '{' {
			return decoded{}, badRequest("data[%d] is not an object", i)
		}
	}
	return decoded{version: w.Version, token: w.Token, payloads: *w.Data}, nil
}
