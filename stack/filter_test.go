package stack

import "testing"

func TestNotInfoAccessLog(t *testing.T) {
	for line, want := range map[string]bool{
		`{"time":"t","level":"INFO","msg":"http request","status":202}`:  false,
		`{"time":"t","level":"ERROR","msg":"http request","status":502}`: true,
		`{"time":"t","level":"INFO","msg":"drained"}`:                    true,
		`panic: boom`: true,
	} {
		if got := notInfoAccessLog([]byte(line)); got != want {
			t.Errorf("notInfoAccessLog(%s) = %v, want %v", line, got, want)
		}
	}
}
