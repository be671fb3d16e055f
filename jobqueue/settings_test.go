package jobqueue_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/jobqueue"
)

// TestSettingsFrom: what `wardgate jobqueue` reads from flags and the
// environment becomes the Config the queue runs with, and a bad value is
// refused naming its variable (the one line the command prints).
func TestSettingsFrom(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	s, err := jobqueue.SettingsFrom(env(map[string]string{
		"MAX_LENGTH": "512KiB", "BATCH_MAX_BYTES": "2MB", "ACK_MODE": "Durable", "SPILL_DIR": "off",
		"API_TOKENS": "a, b", "DRAIN_TIMEOUT": "0", "MAX_WORKERS": " 7 ", "LISTEN": "",
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config
	if c.MaxLength != 512<<10 || c.BatchMaxBytes != 2e6 || c.AckMode != jobqueue.AckDurable || c.SpillDir != "" ||
		len(c.APITokens) != 2 || c.APITokens[1] != "b" || s.DrainTimeout != 0 || c.MaxWorkers != 7 || s.Listen != "127.0.0.1:9001" {
		t.Errorf("settings %+v", s)
	}
	d, err := jobqueue.SettingsFrom(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.DrainTimeout != jobqueue.DefaultDrainTimeout || d.Config.SpillDir != "./data/spill" || d.BlobURL != "file://./data/blobs" {
		t.Errorf("defaults %+v", d)
	}
	for name, bad := range map[string]string{
		"MAX_WORKERS": "0", "MAX_LENGTH": "1TB", "BATCH_MAX_WAIT": "0s", "DRAIN_TIMEOUT": "-1s",
		"LOG_LEVEL": "loud", "LISTEN": "nope", "ACK_MODE": "never",
	} {
		_, err := jobqueue.SettingsFrom(env(map[string]string{name: bad}))
		if err == nil || !strings.Contains(err.Error(), name) && name != "ACK_MODE" {
			t.Errorf("%s=%s: err %v, want one naming %s", name, bad, err, name)
		}
	}
	for _, v := range jobqueue.Vars() {
		if v.Env == "DRAIN_TIMEOUT" && v.Default != (25*time.Second).String() {
			t.Errorf("DRAIN_TIMEOUT default %q", v.Default)
		}
		if strings.ToUpper(strings.ReplaceAll(v.Flag(), "-", "_")) != v.Env {
			t.Errorf("%s: flag %s", v.Env, v.Flag())
		}
	}
}
