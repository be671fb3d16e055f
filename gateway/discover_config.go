package gateway

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults of an upstream's discover: block.
const (
	DefaultDiscoverInterval = 5 * time.Second
	DefaultDiscoverTimeout  = 2 * time.Second
	// minDiscoverInterval bounds how often a short DNS TTL may make the
	// gateway re-resolve, so a TTL of 0 does not turn into a query loop.
	minDiscoverInterval = 100 * time.Millisecond
)

// Discover takes an upstream's targets from DNS, like Caddy's dynamic
// upstreams or Envoy's STRICT_DNS clusters: the A and AAAA records of Name
// (a Kubernetes headless Service) with Port, or the SRV records of Name
// (port and weight from each record). The name is re-resolved every
// Interval, sooner when the answer's TTL is shorter.
type Discover struct {
	// Name is the DNS name to resolve, always taken as fully qualified
	// (no search domains): "jobqueue.default.svc.cluster.local".
	Name string `yaml:"name"`
	// Type is "a" (A and AAAA records, with Port) or "srv". Default "a".
	Type string `yaml:"type"`
	// Port of every target for type a; SRV records carry their own.
	Port int `yaml:"port"`
	// Scheme of the target URLs: http (default) or https.
	Scheme string `yaml:"scheme"`
	// Interval between resolutions; a shorter TTL in the answer wins.
	Interval Duration `yaml:"interval"`
	// Timeout of one resolution.
	Timeout Duration `yaml:"timeout"`
	// Resolver is the DNS server as host:port; empty means the first
	// nameserver of /etc/resolv.conf.
	Resolver string `yaml:"resolver"`
	// AllowEmpty makes an answer with no records mean "no targets" (503)
	// instead of an error that keeps the last good set.
	AllowEmpty bool `yaml:"allow_empty"`
}

const (
	discoverA   = "a"
	discoverSRV = "srv"
)

func (d *Discover) validate(p string) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if d.Name == "" {
		add(fmt.Errorf("%s.name: required", p))
	} else if _, ok := dns.IsDomainName(d.Name); !ok || strings.ContainsAny(d.Name, " \t/:") {
		add(fmt.Errorf("%s.name: %q is not a DNS name", p, d.Name))
	}
	d.Type = strings.ToLower(d.Type)
	if d.Type == "" {
		d.Type = discoverA
	}
	switch d.Type {
	case discoverA:
		if d.Port < 1 || d.Port > 65535 {
			add(fmt.Errorf("%s.port: required for type a, between 1 and 65535, got %d", p, d.Port))
		}
	case discoverSRV:
		if d.Port != 0 {
			add(fmt.Errorf("%s.port: must be unset for type srv (SRV records carry the port)", p))
		}
	default:
		add(fmt.Errorf("%s.type: unknown type %q (known: a, srv)", p, d.Type))
	}
	if d.Scheme == "" {
		d.Scheme = "http"
	}
	if d.Scheme != "http" && d.Scheme != "https" {
		add(fmt.Errorf("%s.scheme: must be http or https, got %q", p, d.Scheme))
	}
	add(d.Interval.check(p+".interval", DefaultDiscoverInterval))
	add(d.Timeout.check(p+".timeout", DefaultDiscoverTimeout))
	if d.Resolver != "" {
		host, port, err := net.SplitHostPort(d.Resolver)
		if err != nil || host == "" || port == "" {
			add(fmt.Errorf("%s.resolver: want host:port (e.g. 10.96.0.10:53), got %q", p, d.Resolver))
		} else if _, err := net.LookupPort("udp", port); err != nil {
			add(fmt.Errorf("%s.resolver: bad port in %q", p, d.Resolver))
		}
	}
	return errs
}

// errNoResolver is returned when no resolver is configured and
// /etc/resolv.conf names none.
var errNoResolver = errors.New("no resolver: set discover.resolver or a nameserver in /etc/resolv.conf")
