// Command otlpsink accepts OTLP/HTTP exports and drops them: the receiving
// end of bench/tracing.sh SINK=null, so the tracing overhead it reports is
// wardgate's (span creation, batching, protobuf encoding, the HTTP export)
// and not a trace backend's CPU on the same two cores.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"sync/atomic"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:4318", "address to accept OTLP/HTTP on")
	flag.Parse()
	var exports, bytes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{signal}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exports.Add(1)
		bytes.Add(n)
		// An empty body is a valid, empty Export*ServiceResponse.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("exports=%d bytes=%d", exports.Load(), bytes.Load())
		_, _ = io.WriteString(w, "ok\n")
	})
	log.Fatal(http.ListenAndServe(*addr, mux))
}
