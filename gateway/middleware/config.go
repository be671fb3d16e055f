package middleware

import (
	"fmt"
	"strings"
)

// Defaults applied by [Config.SetDefaults] to zero fields.
const (
	DefaultRPS        = 100
	DefaultBurst      = 200
	DefaultMaxClients = 100_000
	DefaultMaxBytes   = 1 << 20 // 1 MiB
)

// Config holds the settings of the configurable built-ins; it is the
// `middleware:` section of the gateway YAML.
type Config struct {
	RateLimit RateLimitConfig `yaml:"ratelimit"`
	BodyLimit BodyLimitConfig `yaml:"bodylimit"`
	Auth      AuthConfig      `yaml:"auth"`
	AccessLog AccessLogConfig `yaml:"accesslog"`
}

// RateLimitConfig configures the per-client token bucket.
type RateLimitConfig struct {
	// RPS is the sustained rate of requests per second per client.
	RPS float64 `yaml:"rps"`
	// Burst is the bucket size: requests a client may send at once.
	Burst int `yaml:"burst"`
	// MaxClients bounds the number of clients tracked at once; the least
	// recently seen are forgotten first.
	MaxClients int `yaml:"max_clients"`
}

// BodyLimitConfig configures the request body size limit.
type BodyLimitConfig struct {
	// MaxBytes is the largest request body accepted, in bytes.
	MaxBytes int64 `yaml:"max_bytes"`
}

// AuthConfig configures static bearer-token authentication.
type AuthConfig struct {
	// Tokens are the accepted bearer tokens.
	Tokens []string `yaml:"tokens"`
}

// AccessLogConfig is reserved for access log options; the log line's
// content is fixed today (see [AccessLog]).
type AccessLogConfig struct{}

// SetDefaults fills zero fields with the defaults.
func (c *Config) SetDefaults() {
	if c.RateLimit.RPS == 0 {
		c.RateLimit.RPS = DefaultRPS
	}
	if c.RateLimit.Burst == 0 {
		c.RateLimit.Burst = DefaultBurst
	}
	if c.RateLimit.MaxClients == 0 {
		c.RateLimit.MaxClients = DefaultMaxClients
	}
	if c.BodyLimit.MaxBytes == 0 {
		c.BodyLimit.MaxBytes = DefaultMaxBytes
	}
}

// Validate reports the first invalid field, named by its YAML path, e.g.
// `middleware.ratelimit.rps: must be > 0`. Call SetDefaults first.
func (c Config) Validate() error {
	if err := c.RateLimit.validate(); err != nil {
		return err
	}
	if err := c.BodyLimit.validate(); err != nil {
		return err
	}
	return c.Auth.validate()
}

func (c RateLimitConfig) validate() error {
	switch {
	case !(c.RPS > 0): // also catches NaN
		return fmt.Errorf("middleware.ratelimit.rps: must be > 0, got %v", c.RPS)
	case c.RPS > 1e9:
		return fmt.Errorf("middleware.ratelimit.rps: must be <= 1e9, got %v", c.RPS)
	case c.Burst < 1:
		return fmt.Errorf("middleware.ratelimit.burst: must be >= 1, got %d", c.Burst)
	case c.MaxClients < 1:
		return fmt.Errorf("middleware.ratelimit.max_clients: must be >= 1, got %d", c.MaxClients)
	}
	return nil
}

func (c BodyLimitConfig) validate() error {
	if c.MaxBytes < 1 {
		return fmt.Errorf("middleware.bodylimit.max_bytes: must be >= 1, got %d", c.MaxBytes)
	}
	return nil
}

func (c AuthConfig) validate() error {
	for i, t := range c.Tokens {
		if t == "" {
			return fmt.Errorf("middleware.auth.tokens[%d]: must not be empty", i)
		}
		if strings.IndexFunc(t, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			return fmt.Errorf("middleware.auth.tokens[%d]: must be printable ASCII without spaces", i)
		}
	}
	return nil
}
