package middleware

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	var cfg Config
	cfg.SetDefaults()
	cfg.Auth.Tokens = []string{"alpha-token", "beta"}
	m, err := Build("auth", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := m(okHandler)
	cases := []struct {
		authz string
		code  int
	}{
		{"", 401},
		{"Bearer", 401},
		{"Bearer ", 401},
		{"Basic YWxwaGEtdG9rZW4=", 401},
		{"Bearer alpha", 401},                // prefix of a token
		{"Bearer alpha-token-and-more", 401}, // token is a prefix
		{"Bearer gamma", 401},
		{"Bearer alpha-token", 204},
		{"bearer beta", 204}, // scheme is case-insensitive
		{"Bearer   beta  ", 204},
	}
	for _, tc := range cases {
		req := httptest.NewRequest("GET", "/", nil)
		if tc.authz != "" {
			req.Header.Set("Authorization", tc.authz)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if tc.code == 204 {
			if rec.Code != 204 {
				t.Errorf("%q: status %d, want 204", tc.authz, rec.Code)
			}
			continue
		}
		checkJSONError(t, rec, http.StatusUnauthorized)
		if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%q: WWW-Authenticate = %q", tc.authz, rec.Header().Get("WWW-Authenticate"))
		}
	}
}
