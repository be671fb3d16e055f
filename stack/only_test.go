package stack

import (
	"strings"
	"testing"
)

// TestJobqueueOnlySettings: under --only jobqueue the job queue listens
// where its environment says; a port up cannot probe or hold (0, fd/N) is
// refused naming the variable, and ADMIN_LISTEN port 0 gets a reserved
// port; unset BLOB_URL and SPILL_DIR default under --data.
func TestJobqueueOnlySettings(t *testing.T) {
	data := t.TempDir()
	s := &Stack{Config: Config{Only: OnlyJobqueue, Workers: 7}}
	for _, bad := range []string{"127.0.0.1:0", "fd/3", "nope"} {
		t.Setenv("LISTEN", bad)
		r := &run{Stack: s, socks: &heldSockets{}, exe: "/bin/false", data: data}
		_, err := r.jobqueueOnly()
		r.socks.Close()
		if err == nil || !strings.Contains(err.Error(), "LISTEN") {
			t.Errorf("LISTEN=%s: err %v, want one naming LISTEN", bad, err)
		}
	}
	t.Setenv("LISTEN", "0.0.0.0:19001")
	t.Setenv("ADMIN_LISTEN", "127.0.0.1:0")
	t.Setenv("BLOB_URL", "")
	t.Setenv("SPILL_DIR", "")
	r := &run{Stack: s, socks: &heldSockets{}, exe: "/bin/false", data: data, tokenFile: "/run/token"}
	defer r.socks.Close()
	spec, err := r.jobqueueOnly()
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != "jobqueue" || spec.HealthURL != "http://127.0.0.1:19001/healthz" || spec.PublicURL != "http://0.0.0.0:19001" {
		t.Errorf("spec %+v", spec)
	}
	if strings.HasSuffix(spec.MetricsURL, ":0/metrics") || len(r.socks.reserved) != 1 {
		t.Errorf("ADMIN_LISTEN port 0 not replaced by a reserved port: %s", spec.MetricsURL)
	}
	env := strings.Join(spec.Command().Env, "\n")
	for _, want := range []string{"MAX_WORKERS=7", "BLOB_URL=file://" + data + "/blobs", "SPILL_DIR=" + data + "/spill", "LISTEN=0.0.0.0:19001", "WARDGATE_ADMIN_TOKEN_FILE=/run/token"} {
		if !strings.Contains(env, "\n"+want+"\n") && !strings.HasSuffix(env, "\n"+want) {
			t.Errorf("child environment lacks %s", want)
		}
	}
}

func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:9001": "127.0.0.1:9001", "[::]:8080": "127.0.0.1:8080", ":6061": "127.0.0.1:6061",
		"10.1.2.3:9001": "10.1.2.3:9001", "fd/3": "fd/3",
	} {
		if got := localAddr(in); got != want {
			t.Errorf("localAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
