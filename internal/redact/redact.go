// Package redact removes secrets from what diagnostics write to disk: the
// environment and command line of a process in capture bundles (diag
// capture, diag watch --core, the post-mortems of wardgate up) and the
// build settings recorded with them. Every writer of environ or cmdline
// goes through here, so there is one rule to review and to fuzz.
//
// Two nets, because either alone misses real cases:
//
//   - by name: an environment variable or a --flag whose name contains
//     cred, secret, token, pass, key, auth, session, cookie, dsn, private,
//     cert, signature, conn or database_url (any case) has its value
//     replaced, whatever the value looks like (MYAPP_CREDS=..., --api-tokens
//     VALUE, --db-pass=...);
//   - by value: whatever the name, a URL with userinfo
//     (scheme://user:pass@host), an Authorization scheme and its credential
//     (Bearer/Basic/Token ...), an AWS access key ID (AKIA...), well-known
//     token formats (GitHub, Slack, JWT, PEM private keys) and long
//     high-entropy strings are replaced.
//
// Over-redaction costs a little context in a bundle; under-redaction
// leaks a credential to whoever reads the bundle. When in doubt, redact.
package redact

import (
	"math"
	"regexp"
	"strings"
)

// Placeholder replaces a secret.
const Placeholder = "<redacted>"

// secretName matches names (environment variables, flags) whose values are
// secrets, case-insensitively, anywhere in the name.
var secretName = regexp.MustCompile(`(?i)(CRED|SECRET|TOKEN|PASS|KEY|AUTH|SESSION|COOKIE|DSN|PRIVATE|CERT|SIGNATURE|DATABASE_URL|CONN)`)

// SecretName reports whether a variable or flag named name holds a secret.
func SecretName(name string) bool { return secretName.MatchString(name) }

// valuePatterns are secrets recognizable by their form, replaced inline.
// Each keeps what identifies the kind of secret (the scheme, the
// "Bearer") and replaces the secret part.
var valuePatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	// PEM private keys, whole block (or to the end when cut).
	{regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`), Placeholder},
	// scheme://userinfo@ : the user alone can be a token (https://ghp_x@github.com).
	{regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s]+@`), "${1}" + Placeholder + "@"},
	// Authorization schemes followed by their credential.
	{regexp.MustCompile(`(?i)\b(bearer|basic|token|digest|negotiate|apikey|api-key)(\s+|:\s*|=)[^\s"',;]+`), "${1}${2}" + Placeholder},
	// AWS access key IDs and other well-known token formats.
	{regexp.MustCompile(`\b(AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b`), Placeholder},
	{regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk_(live|test)_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_-]{20,})`), Placeholder},
	{regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`), Placeholder},
}

// entropyCandidate is a run of characters a token is made of (base64,
// base64url, hex, and the separators of API keys).
var entropyCandidate = regexp.MustCompile(`[A-Za-z0-9+/=_.~-]{20,}`)

// Text replaces the secrets found by value in s (see the package doc) and
// returns the result; s without any comes back unchanged.
func Text(s string) string {
	for _, p := range valuePatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return entropyCandidate.ReplaceAllStringFunc(s, func(c string) string {
		if highEntropy(c) {
			return Placeholder
		}
		return c
	})
}

// highEntropy: a long string of mixed character classes whose characters
// are spread like random bytes, not like words or paths. A string with
// slashes is a path (/tmp/TestFoo123/001/data) unless it reads as base64
// (padding, or many capitals among random-looking characters) or one of
// its parts is random-looking by itself.
func highEntropy(c string) bool {
	if !strings.Contains(c, "/") {
		return randomLooking(c)
	}
	if looksEncoded(c) {
		return true
	}
	for _, part := range strings.Split(c, "/") {
		if randomLooking(part) {
			return true
		}
	}
	return false
}

// looksEncoded: a string with '/' that is base64 rather than a path.
func looksEncoded(c string) bool {
	flat := strings.ReplaceAll(c, "/", "")
	if strings.HasSuffix(c, "=") && randomLooking(strings.TrimRight(flat, "=")) {
		return true
	}
	if strings.Contains(c, ".") {
		return false
	}
	letters, upper := 0, 0
	for i := 0; i < len(flat); i++ {
		switch b := flat[i]; {
		case b >= 'A' && b <= 'Z':
			upper++
			letters++
		case b >= 'a' && b <= 'z':
			letters++
		}
	}
	return letters > 0 && upper*4 >= letters && randomLooking(flat)
}

// randomLooking: at least 20 characters, at least two of lower, upper and
// digit, and a Shannon entropy per character close to that of random
// data of that alphabet and length.
func randomLooking(s string) bool {
	if len(s) < 20 {
		return false
	}
	var lower, upper, digit bool
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z':
			lower = true
		case b >= 'A' && b <= 'Z':
			upper = true
		case b >= '0' && b <= '9':
			digit = true
		}
	}
	classes := 0
	for _, ok := range []bool{lower, upper, digit} {
		if ok {
			classes++
		}
	}
	if classes < 2 || lowerName.MatchString(s) && !mixedPiece(s) || camelCase.MatchString(s) {
		return false
	}
	e := entropy(s)
	if isHex(s) {
		return e >= 3.0 // random hex: ~3.7-4.0 bits per character
	}
	return e >= 3.5 // random base64 of 20+ characters: ~4.0-5.5
}

// lowerName is a host, service or file name: lower-case pieces joined by
// - . or _ (ip-10-0-0-1.ec2.internal, wardgate-jobqueue-12).
var lowerName = regexp.MustCompile(`^[a-z0-9]+([-._][a-z0-9]+)*$`)

// camelCase is an identifier made of words (ThisIsAVeryLongName,
// HTTPServerName). Random letters seldom fall into this shape (no digits,
// every run of lower-case letters at least two long), and random tokens
// of 20+ characters almost always hold a digit anyway.
var camelCase = regexp.MustCompile(`^[a-z]*([A-Z]+[a-z]{2,})+[A-Z]*$`)

// mixedPiece reports whether a piece of a lowerName mixes letters and
// digits over more than 4 characters, as a random token's pieces do
// (a name's pieces are words, numbers or short tags like ec2).
func mixedPiece(s string) bool {
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '.' || r == '_' }) {
		if len(p) <= 4 {
			continue
		}
		letter, digit := false, false
		for i := 0; i < len(p); i++ {
			if p[i] >= '0' && p[i] <= '9' {
				digit = true
			} else {
				letter = true
			}
		}
		if letter && digit {
			return true
		}
	}
	return false
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F' || b == '-') {
			return false
		}
	}
	return true
}

func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	e := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			e -= p * math.Log2(p)
		}
	}
	return e
}

// Value redacts the value of variable name: all of it when the name is a
// secret's or the value holds one (a half-redacted environment value is
// of no use and may still leak through its remaining parts).
func Value(name, value string) string {
	if SecretName(name) || Text(value) != value {
		return Placeholder
	}
	return value
}

// Environ redacts "NAME=value" entries (os.Environ form).
func Environ(env []string) []string {
	out := make([]string, len(env))
	for i, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			out[i] = Text(kv)
			continue
		}
		out[i] = name + "=" + Value(name, value)
	}
	return out
}

// flagLike is an argument that is a flag rather than a flag's value.
var flagLike = regexp.MustCompile(`^--?[a-zA-Z][a-z0-9-]*$`)

// envAssignment is NAME=value as given to env(1) or a shell.
var envAssignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// Args redacts a command line: the values of secret-named flags, in both
// the --flag=value and the --flag value forms (and -flag), secret-named
// NAME=value assignments, and secrets found by value anywhere.
func Args(args []string) []string {
	out := make([]string, len(args))
	redactNext := false
	for i, a := range args {
		if redactNext && !flagLike.MatchString(a) {
			out[i] = Placeholder
			redactNext = false
			continue
		}
		redactNext = false
		switch {
		case i > 0 && strings.HasPrefix(a, "-") && len(a) > 1 && a != "--":
			name, _, hasEq := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if SecretName(name) {
				if hasEq {
					out[i] = a[:strings.IndexByte(a, '=')+1] + Placeholder
				} else {
					out[i] = a
					redactNext = true
				}
				continue
			}
		case envAssignment.MatchString(a):
			name, value, _ := strings.Cut(a, "=")
			if SecretName(name) {
				out[i] = name + "=" + Placeholder
				continue
			}
			// The "name" of a base64 token ending in = is the token.
			out[i] = Text(name) + "=" + Text(value)
			continue
		}
		out[i] = Text(a)
	}
	return out
}

// ldflagsSecret is -X importpath.name=value in recorded -ldflags whose
// name is a secret's (a key baked into the binary at build time).
var ldflagsSecret = regexp.MustCompile(`(?i)(-X[= ]\s*[^\s=]*(?:CRED|SECRET|TOKEN|PASS|KEY|AUTH|SESSION|COOKIE|DSN|PRIVATE|SIGNATURE)[^\s=]*=)[^\s'"]*`)

// BuildInfo redacts the build settings a Go binary records
// (debug/buildinfo's String form): -X assignments of secret names in
// -ldflags, and secrets recognizable by form. Revisions and module sums
// stay: they are what the reader needs, and no secret.
func BuildInfo(s string) string {
	s = ldflagsSecret.ReplaceAllString(s, "${1}"+Placeholder)
	for _, p := range valuePatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}
