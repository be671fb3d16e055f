package testutil

import (
	"io"
	"net/http"
	"sync"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTLPReceiver is a minimal OTLP/HTTP trace endpoint (http/protobuf): it
// decodes what the SDK's real exporter sends to /v1/traces and keeps every
// span; anything else is answered 400 and recorded in Errors.
type OTLPReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	errs  []string
}

func (o *OTLPReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.URL.Path != "/v1/traces" || err != nil {
		reason := "unexpected path"
		if err != nil {
			reason = err.Error()
		}
		o.errs = append(o.errs, r.Method+" "+r.URL.Path+": "+reason)
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ = proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

// Spans returns the spans received so far.
func (o *OTLPReceiver) Spans() []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*tracepb.Span(nil), o.spans...)
}

// Errors returns the requests that were not valid trace exports.
func (o *OTLPReceiver) Errors() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.errs...)
}
