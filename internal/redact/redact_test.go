package redact

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestEnviron(t *testing.T) {
	in := []string{
		"HOME=/root",
		"PATH=/usr/local/go/bin:/usr/local/sbin:/usr/bin",
		"MYAPP_CREDS=alice:wonderland",                          // by name: CRED
		"DB_PASSWD=hunter2",                                     // PASS
		"Session_Id=s1",                                         // SESSION, any case
		"STRIPE_API_KEY=sk_live_abc",                            // KEY
		"SENTRY_DSN=https://abc@o1.ingest/1",                    // DSN
		"HTTP_COOKIE=sid=1",                                     // COOKIE
		"UPSTREAM=https://deploy:pa55@git.example.com/repo.git", // by value: userinfo
		"HELPER_HEADER=Authorization: Bearer abc.def.ghi",       // bearer
		"SOME_ID=AKIAIOSFODNN7EXAMPLE",                          // AWS key ID
		"OPAQUE=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg",         // high entropy
		"BUILD_SHA=9fceb02d0ae598e95dc970b74767f19372d61af8",    // hex: redacted too
		"OTEL_SERVICE_NAME=wardgate-jobqueue-12",                // a name: kept
		"HOSTNAME=ip-10-0-0-1.ec2.internal",                     // kept
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod",  // kept
		"GOTRACEBACK=crash",                                     // kept
		"LISTEN=127.0.0.1:9001",                                 // kept
		"NOEQ",
	}
	want := []string{
		"HOME=/root",
		"PATH=/usr/local/go/bin:/usr/local/sbin:/usr/bin",
		"MYAPP_CREDS=<redacted>",
		"DB_PASSWD=<redacted>",
		"Session_Id=<redacted>",
		"STRIPE_API_KEY=<redacted>",
		"SENTRY_DSN=<redacted>",
		"HTTP_COOKIE=<redacted>",
		"UPSTREAM=<redacted>",
		"HELPER_HEADER=<redacted>",
		"SOME_ID=<redacted>",
		"OPAQUE=<redacted>",
		"BUILD_SHA=<redacted>",
		"OTEL_SERVICE_NAME=wardgate-jobqueue-12",
		"HOSTNAME=ip-10-0-0-1.ec2.internal",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod",
		"GOTRACEBACK=crash",
		"LISTEN=127.0.0.1:9001",
		"NOEQ",
	}
	got := Environ(in)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Environ(%q) = %q, want %q", in[i], got[i], want[i])
		}
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// The review's case: a secret-named flag with its value apart.
		{"wardgate jobqueue --api-tokens t0k3n-a,t0k3n-b --listen 127.0.0.1:0",
			"wardgate jobqueue --api-tokens <redacted> --listen 127.0.0.1:0"},
		{"wardgate jobqueue --api-tokens=t0k3n-a,t0k3n-b", "wardgate jobqueue --api-tokens=<redacted>"},
		{"app -password hunter2 -v", "app -password <redacted> -v"},
		{"app --client-secret=s --session-key k --cookie-file /tmp/c --auth u:p --dsn postgres://x",
			"app --client-secret=<redacted> --session-key <redacted> --cookie-file <redacted> --auth <redacted> --dsn <redacted>"},
		// A secret-named boolean flag does not swallow the next flag.
		{"app --no-auth --listen :80", "app --no-auth --listen :80"},
		{"env MYAPP_CREDS=alice:pw PATH=/bin app", "env MYAPP_CREDS=<redacted> PATH=/bin app"},
		{"curl -H Authorization: Bearer abc.def.ghi https://u:p@h/x",
			"curl -H Authorization: Bearer <redacted> https://<redacted>@h/x"},
		{"app --blob-url s3://b?endpoint=http://127.0.0.1:9000&region=us-east-1",
			"app --blob-url s3://b?endpoint=http://127.0.0.1:9000&region=us-east-1"},
		{"app --aws AKIAIOSFODNN7EXAMPLE", "app --aws <redacted>"},
		{"/usr/bin/app --config /etc/app/config.yaml", "/usr/bin/app --config /etc/app/config.yaml"},
	} {
		got := strings.Join(Args(strings.Fields(tc.in)), " ")
		if tc.in == "curl -H Authorization: Bearer abc.def.ghi https://u:p@h/x" {
			got = strings.Join(Args([]string{"curl", "-H", "Authorization: Bearer abc.def.ghi", "https://u:p@h/x"}), " ")
		}
		if got != tc.want {
			t.Errorf("Args(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	in := "path\texample.com/app\nbuild\t-ldflags=\"-X main.apiKey=abc123 -X main.version=1.2\"\nbuild\tvcs.revision=9fceb02d0ae598e95dc970b74767f19372d61af8\n"
	got := BuildInfo(in)
	if strings.Contains(got, "abc123") || !strings.Contains(got, "main.version=1.2") || !strings.Contains(got, "9fceb02d0ae598e95dc970b74767f19372d61af8") {
		t.Errorf("BuildInfo:\n%s", got)
	}
}

// secretForms embeds secret in every form the redactor promises to catch.
func secretForms(secret string) (env []string, args [][]string) {
	env = []string{
		"MYAPP_CREDS=" + secret, "db_password=" + secret, "X_AUTH_HEADER=" + secret,
		"SESSION=" + secret, "SOME_KEY_ID=" + secret, "APP_DSN=" + secret,
		"UPSTREAM=https://user:" + secret + "@example.com/x",
		"UPSTREAM=https://" + secret + "@example.com/x",
		"HDR=Authorization: Bearer " + secret,
	}
	args = [][]string{
		{"app", "--api-tokens", secret},
		{"app", "--api-tokens=" + secret},
		{"app", "-client-secret", secret, "--listen", ":1"},
		{"app", "--db-pass=" + secret},
		{"app", "--cookie", secret},
		{"app", "--url", "postgres://u:" + secret + "@db:5432/x"},
		{"curl", "-H", "Authorization: Bearer " + secret},
		{"env", "MYAPP_CREDS=" + secret, "app"},
	}
	return env, args
}

// FuzzRedact: for any input, never panic; for secrets generated in any of
// the promised forms, never return the secret. Secrets by name may be
// anything without separators; secrets by value only are random tokens
// (a hash of the input, base64 or hex encoded).
func FuzzRedact(f *testing.F) {
	f.Add([]byte("hunter2"), "FOO=bar")
	f.Add([]byte("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "--token x")
	f.Add([]byte{0, 1, 2}, "https://a:b@c")
	f.Add([]byte("-tok"), "Bearer")
	f.Add([]byte("-Tok_9"), "Bearer")
	f.Fuzz(func(t *testing.T, raw []byte, text string) {
		// Never panic, on anything.
		Text(text)
		Environ([]string{text, "A=" + text})
		Args([]string{"app", text, text})
		BuildInfo(text)

		// By name: any value without whitespace or the separators that
		// end a value in its form.
		secret := strings.Map(func(r rune) rune {
			if r <= ' ' || strings.ContainsRune("@/:=\"',;#?\x7f", r) || r > '~' {
				return 'x'
			}
			return r
		}, string(raw))
		// A value that looks like a flag name (-v, --no-auth) after a
		// secret-named flag is taken for the next flag, as it must be for
		// boolean flags: not a secret form.
		if len(secret) >= 4 && !flagLike.MatchString(secret) && !strings.Contains(formsText()+Placeholder, secret) {
			check(t, secret)
		}
		// By value alone: random tokens under innocent names.
		sum := sha256.Sum256(raw)
		for _, tok := range []string{
			base64.RawURLEncoding.EncodeToString(sum[:]),
			base64.StdEncoding.EncodeToString(sum[:]),
			hex.EncodeToString(sum[:]),
			"AKIA" + strings.ToUpper(hex.EncodeToString(sum[:8])),
		} {
			for _, kv := range []string{"OPAQUE=" + tok, "CALLBACK=https://example.com/cb?x=" + tok} {
				if got := Environ([]string{kv})[0]; strings.Contains(got, tok) {
					t.Fatalf("Environ(%q) = %q keeps the token", kv, got)
				}
			}
			if got := strings.Join(Args([]string{"app", "--opaque", tok, "--x=" + tok}), " "); strings.Contains(got, tok) {
				t.Fatalf("Args with %q = %q keeps the token", tok, got)
			}
		}
	})
}

// formsText is the text of the forms themselves: a "secret" found in it
// (Bear, example) is found in any output.
func formsText() string {
	env, args := secretForms("")
	var b strings.Builder
	for _, kv := range env {
		b.WriteString(kv + "\x00")
	}
	for _, a := range args {
		b.WriteString(strings.Join(a, "\x00") + "\x00")
	}
	return b.String()
}

func check(t *testing.T, secret string) {
	t.Helper()
	env, args := secretForms(secret)
	for _, kv := range env {
		if got := Environ([]string{kv})[0]; strings.Contains(got, secret) {
			t.Fatalf("Environ(%q) = %q keeps the secret", kv, got)
		}
	}
	for _, a := range args {
		if got := strings.Join(Args(a), "\x00"); strings.Contains(got, secret) {
			t.Fatalf("Args(%q) = %q keeps the secret", a, got)
		}
	}
}
