package gateway

// Hot-path telemetry without per-request garbage: metric options are
// cached per (target, method, status or error type) in a
// telemetry.OptionCache, keyed by measureKey, and span attributes are only
// built when the span records (with traces off, spans are non-recording and
// attributes would be thrown away).

// errorTypes are the error.type values of failed attempts (see errorType);
// index 0 means "no error".
var errorTypes = [...]string{"", "client_closed", "body_too_large", "timeout", "connection_refused", "connection_error",
	"request_body_timeout", "bad_request_body"}

func errorTypeIndex(et string) int {
	for i, e := range errorTypes[1:] {
		if e == et {
			return i + 1
		}
	}
	return len(errorTypes) - 1 // connection_error
}

// measureKey packs a telemetry.MethodIndex, a status code (0 if none) and
// an error type index into a telemetry.OptionCache key (the layout
// telemetry's server handler uses too, with no error type).
func measureKey(method, status, errType int) uint32 {
	return uint32(method) | uint32(status&0xffff)<<4 | uint32(errType)<<20
}
