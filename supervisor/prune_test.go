package supervisor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestNewPostmortemDirKeepsTheNewest(t *testing.T) {
	data := t.TempDir()
	s, err := New(Options{DataDir: data, KeepPostmortems: 3})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	var made []string
	for i := range 5 {
		dir, err := s.newPostmortemDir("jobqueue-1", 100+i, base.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, filepath.Base(dir))
	}
	entries, err := os.ReadDir(filepath.Join(data, "postmortem"))
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := made[2:]; !slices.Equal(left, want) {
		t.Errorf("kept %v, want the three newest %v", left, want)
	}

	// 0 keeps everything.
	all, _ := New(Options{DataDir: t.TempDir()})
	for i := range 4 {
		if _, err := all.newPostmortemDir("gateway", i, base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(all.opts.DataDir, "postmortem")); len(entries) != 4 {
		t.Errorf("KeepPostmortems 0 kept %d of 4", len(entries))
	}
}
