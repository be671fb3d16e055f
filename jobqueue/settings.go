package jobqueue

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/internal/listen"
)

// Var is one setting of `wardgate jobqueue`: an environment variable
// (12-factor, the names Config's field comments give) and, overriding it, a
// flag of the same name in lower case with dashes (Flag).
type Var struct {
	Env, Default, Help string
}

// Flag is the command-line flag of v: MAX_WORKERS is --max-workers.
func (v Var) Flag() string {
	return strings.ReplaceAll(strings.ToLower(v.Env), "_", "-")
}

// Vars lists every setting SettingsFrom reads, in the order `wardgate
// jobqueue --help` prints them, with their defaults.
func Vars() []Var {
	d := DefaultConfig()
	return []Var{
		{"LISTEN", "127.0.0.1:9001", "public address (POST /v1/payloads, /healthz, /readyz): host:port (port 0 picks a free one) or fd/N, an inherited listening socket"},
		{"ADMIN_LISTEN", "127.0.0.1:0", "admin address (/metrics, /debug/pprof/, /healthz), host:port or fd/N; keep it on loopback"},
		{"MAX_WORKERS", strconv.Itoa(d.MaxWorkers), "worker goroutines (default: 2 x GOMAXPROCS, at least 4)"},
		{"MAX_QUEUE", strconv.Itoa(d.MaxQueue), "payloads acked and not yet stored, at most (the memory bound)"},
		{"MAX_LENGTH", "1MiB", "request body size limit (bytes, or with KiB/MiB/GiB)"},
		{"BLOB_URL", "file://./data/blobs", "object store: file:///dir, file://./dir, mem://, s3://bucket?endpoint=URL&region=R&use_path_style=true"},
		{"BATCH_MAX_PAYLOADS", strconv.Itoa(d.BatchMaxPayloads), "payloads per stored object, at most"},
		{"BATCH_MAX_BYTES", strconv.Itoa(d.BatchMaxBytes>>20) + "MiB", "flush a batch once its uncompressed NDJSON reaches this size"},
		{"BATCH_MAX_WAIT", d.BatchMaxWait.String(), "flush a batch this long after its first payload at the latest (durable mode flushes as soon as no request is waiting to be queued)"},
		{"ACK_MODE", string(d.AckMode), "when to answer 202: enqueued (queued) or durable (stored)"},
		{"API_TOKENS", "", "comma-separated tokens accepted in the collection's \"token\" field or an Authorization: Bearer header; empty disables auth"},
		{"COMPRESSION", string(d.Compression), "object compression: gzip (.ndjson.gz) or none (.ndjson)"},
		{"INSTANCE", "<hostname>-<pid>", "name of this process in object keys"},
		{"DRAIN_TIMEOUT", DefaultDrainTimeout.String(), "on SIGTERM, stop retrying uploads after this long and spill what is not stored to SPILL_DIR (Kubernetes allows 30s; 0: wait forever)"},
		{"SPILL_DIR", "./data/spill", "local directory for acked payloads not stored by the drain deadline (fsync'd, uploaded on the next start); \"off\" disables (they are then lost)"},
		{"BLOB_PUT_TIMEOUT", d.PutTimeout.String(), "deadline of one blob PUT attempt (then counted, logged and retried)"},
		{"ACK_TIMEOUT", d.AckTimeout.String(), "durable mode: answer 503 + Retry-After if the payloads are not stored within this (they still are, later)"},
		{"LOG_LEVEL", "info", "debug, info, warn or error"},
	}
}

// DefaultDrainTimeout bounds a drain by default: Kubernetes sends SIGKILL
// 30s after SIGTERM, and what is not stored by then is spilled to disk,
// which needs the remaining seconds.
const DefaultDrainTimeout = 25 * time.Second

// Settings is the whole configuration of a `wardgate jobqueue` process:
// the Queue's Config and what the process around it needs.
type Settings struct {
	Config       Config
	Listen       string        // LISTEN: public host:port or fd/N
	AdminListen  string        // ADMIN_LISTEN: admin host:port or fd/N
	BlobURL      string        // BLOB_URL: gocloud.dev/blob URL of the store
	DrainTimeout time.Duration // DRAIN_TIMEOUT: 0 waits forever
	LogLevel     slog.Level    // LOG_LEVEL
}

// SettingsFrom resolves every variable of Vars through get (the command
// passes: its flag if given, else the environment; blank means unset) and
// reports the first bad one by name.
func SettingsFrom(get func(name string) (string, bool)) (Settings, error) {
	s := Settings{Config: DefaultConfig()}
	val := func(name, def string) string {
		if v, ok := get(name); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	posInt := func(name string, def int) (int, error) {
		raw := val(name, strconv.Itoa(def))
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("%s: %q is not a positive integer", name, raw)
		}
		return n, nil
	}
	size := func(name string, def int64) (int64, error) {
		raw := val(name, strconv.FormatInt(def, 10))
		n, err := parseByteSize(raw)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return n, nil
	}
	dur := func(name string, def time.Duration, allowZero bool) (time.Duration, error) {
		raw := val(name, def.String())
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 || (d == 0 && !allowZero) {
			return 0, fmt.Errorf("%s: %q is not a positive duration (e.g. 500ms, 2s)", name, raw)
		}
		return d, nil
	}
	var err error
	c := &s.Config
	s.Listen = val("LISTEN", "127.0.0.1:9001")
	if err := listen.Check(s.Listen); err != nil {
		return s, fmt.Errorf("LISTEN: %w", err)
	}
	s.AdminListen = val("ADMIN_LISTEN", "127.0.0.1:0")
	if err := listen.Check(s.AdminListen); err != nil {
		return s, fmt.Errorf("ADMIN_LISTEN: %w", err)
	}
	if c.MaxWorkers, err = posInt("MAX_WORKERS", c.MaxWorkers); err != nil {
		return s, err
	}
	if c.MaxQueue, err = posInt("MAX_QUEUE", c.MaxQueue); err != nil {
		return s, err
	}
	if c.MaxLength, err = size("MAX_LENGTH", c.MaxLength); err != nil {
		return s, err
	}
	s.BlobURL = val("BLOB_URL", "file://./data/blobs")
	if c.BatchMaxPayloads, err = posInt("BATCH_MAX_PAYLOADS", c.BatchMaxPayloads); err != nil {
		return s, err
	}
	bmb, err := size("BATCH_MAX_BYTES", int64(c.BatchMaxBytes))
	if err != nil {
		return s, err
	}
	c.BatchMaxBytes = int(bmb)
	if c.BatchMaxWait, err = dur("BATCH_MAX_WAIT", c.BatchMaxWait, false); err != nil {
		return s, err
	}
	c.AckMode = AckMode(strings.ToLower(val("ACK_MODE", string(c.AckMode))))
	c.Compression = Compression(strings.ToLower(val("COMPRESSION", string(c.Compression))))
	c.APITokens = nil
	if raw := val("API_TOKENS", ""); raw != "" {
		for _, t := range strings.Split(raw, ",") {
			c.APITokens = append(c.APITokens, strings.TrimSpace(t))
		}
	}
	c.Instance = val("INSTANCE", c.Instance)
	if s.DrainTimeout, err = dur("DRAIN_TIMEOUT", DefaultDrainTimeout, true); err != nil {
		return s, err
	}
	if c.PutTimeout, err = dur("BLOB_PUT_TIMEOUT", c.PutTimeout, false); err != nil {
		return s, err
	}
	if c.AckTimeout, err = dur("ACK_TIMEOUT", c.AckTimeout, false); err != nil {
		return s, err
	}
	if c.SpillDir = val("SPILL_DIR", "./data/spill"); strings.EqualFold(c.SpillDir, "off") {
		c.SpillDir = ""
	}
	if err := s.LogLevel.UnmarshalText([]byte(val("LOG_LEVEL", "info"))); err != nil {
		return s, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	if err := c.Validate(); err != nil {
		return s, err
	}
	return s, nil
}

// parseByteSize reads "1048576", "512KiB", "1MiB", "1GiB" (and KB/MB/GB as
// powers of 1000).
func parseByteSize(raw string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := raw, int64(1)
	for _, u := range units {
		if strings.HasSuffix(raw, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(raw, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a positive size (bytes, or with KiB/MiB/GiB)", raw)
	}
	return n * mult, nil
}
