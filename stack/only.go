package stack

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/wardgate/wardgate/diag/upload"
	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/supervisor"
	"github.com/wardgate/wardgate/telemetry"
)

// jobqueueOnly is the supervised job queue of `up --only jobqueue`: one
// `wardgate jobqueue` child configured by up's environment (a container's:
// LISTEN=0.0.0.0:9001 and so on, exactly as `wardgate jobqueue` reads it),
// with up's flags --workers, --queue, --ack-mode and --blob-url on top
// when given. LISTEN needs a fixed port: up probes the child's /healthz
// there and a restarted child must come back on it. ADMIN_LISTEN with port
// 0 gets a port up reserves, as on one machine. Unset BLOB_URL and
// SPILL_DIR default to DATA/blobs and DATA/spill, like the whole stack's.
func (r *run) jobqueueOnly() (supervisor.Spec, error) {
	cfg, socks, exe, data, tokenFile := r.Config, r.socks, r.exe, r.data, r.tokenFile
	set := map[string]string{
		"MAX_WORKERS": intOrEmpty(cfg.Workers),
		"MAX_QUEUE":   intOrEmpty(cfg.Queue),
		"ACK_MODE":    cfg.AckMode,
		"BLOB_URL":    cfg.BlobURL,
	}
	if set["BLOB_URL"] == "" && strings.TrimSpace(os.Getenv("BLOB_URL")) == "" {
		blobs := filepath.Join(data, "blobs")
		if err := os.MkdirAll(blobs, 0o700); err != nil {
			return supervisor.Spec{}, fmt.Errorf("blob dir: %w", err)
		}
		set["BLOB_URL"] = (&url.URL{Scheme: "file", Path: blobs}).String()
	}
	if strings.TrimSpace(os.Getenv("SPILL_DIR")) == "" {
		set["SPILL_DIR"] = filepath.Join(data, "spill")
	}
	lookup := func(name string) (string, bool) {
		if v := set[name]; v != "" {
			return v, true
		}
		return os.LookupEnv(name)
	}
	st, err := jobqueue.SettingsFrom(lookup)
	if err != nil {
		return supervisor.Spec{}, fmt.Errorf("--only jobqueue: %w", err)
	}
	pub, adm := st.Listen, st.AdminListen
	if _, port, err := net.SplitHostPort(pub); err != nil || port == "0" {
		return supervisor.Spec{}, fmt.Errorf("--only jobqueue: LISTEN %q: want host:port with a fixed port (e.g. 0.0.0.0:9001 in a container)", pub)
	}
	host, port, err := net.SplitHostPort(adm)
	if err != nil {
		return supervisor.Spec{}, fmt.Errorf("--only jobqueue: ADMIN_LISTEN %q: want host:port", adm)
	}
	if port == "0" {
		if host == "" || host == "localhost" {
			host = "127.0.0.1"
		}
		if adm, err = socks.reserveOn(host); err != nil {
			return supervisor.Spec{}, fmt.Errorf("--only jobqueue: ADMIN_LISTEN %s: %w", st.AdminListen, err)
		}
	}
	set["LISTEN"], set["ADMIN_LISTEN"] = pub, adm
	set[telemetry.AdminTokenFileEnv] = tokenFile
	env := childEnv(OnlyJobqueue, set)
	return supervisor.Spec{
		Name:        OnlyJobqueue,
		Command:     func() *exec.Cmd { c := exec.Command(exe, "jobqueue"); c.Env = env; return c },
		ReadyLine:   "listening ",
		HealthURL:   "http://" + localAddr(pub) + "/healthz",
		StopOrder:   1,
		StopTimeout: cfg.StopTimeout,
		PublicURL:   "http://" + pub,
		MetricsURL:  "http://" + adm + "/metrics",
	}, nil
}

// startOnly starts the one service of --only and prints the table.
func (r *run) startOnly(ctx context.Context) error {
	var spec supervisor.Spec
	if r.Config.Only == OnlyGateway {
		spec = r.gatewaySpec(r.Config.GatewayConfig)
	} else {
		var err error
		if spec, err = r.jobqueueOnly(); err != nil {
			return err
		}
	}
	if err := startWithin(ctx, r.sup, spec, r.Config.StartTimeout); err != nil {
		return err
	}
	printTable(r.Stdout, r.self, r.sup.Status())
	dest := "none (disk only)"
	if r.Config.Upload != "" {
		dest = upload.Redact(r.Config.Upload)
	}
	runDir := filepath.Join(r.data, "run")
	fmt.Fprintf(r.Stdout, "\ndata: %s\npost-mortems: %s  upload: %s\nlogs: %s/%s/{stdout,stderr}.log\ncurrent pid: %s/%s/pid, or GET http://%s/status\nstop: SIGTERM to pid %d\n",
		r.data, filepath.Join(r.data, "postmortem"), dest, runDir, r.Config.Only, runDir, r.Config.Only, r.admLn.Addr(), os.Getpid())
	r.Logger.Info("service up", "only", r.Config.Only, "data", r.data, "upload", dest)
	return nil
}

// localAddr is where up itself reaches a listener bound to addr: an
// unspecified host (0.0.0.0, ::, "") is reached on loopback.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
