// Command naiveingest is the baseline of bench/ingest.sh: the design notes'
// first handler without the goroutine per payload. It decodes the
// collection with encoding/json (the same RawMessage elements wardgate's
// decoder produces), counts the payloads and drops them: no queue, no
// storage, no telemetry. Whatever wardgate up reaches is reported as a
// ratio of this, measured in the same run on the same machine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/wardgate/wardgate/bench/internal/benchsrv"
)

// maxLength is the design notes' MaxLength and wardgate's MAX_LENGTH default.
const maxLength = 1 << 20

type collection struct {
	Version string            `json:"version"`
	Token   string            `json:"token"`
	Data    []json.RawMessage `json:"data"`
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "naiveingest:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("naiveingest", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/payloads", func(w http.ResponseWriter, r *http.Request) {
		var c collection
		if err := json.NewDecoder(io.LimitReader(r.Body, maxLength)).Decode(&c); err != nil {
			http.Error(w, `{"error":"bad collection"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"accepted":`+strconv.Itoa(len(c.Data))+"}\n")
	})
	return benchsrv.Serve(ctx, *listen, stdout, mux)
}
