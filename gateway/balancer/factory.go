package balancer

import (
	"errors"
	"fmt"
	"strings"
)

// Options tunes the policies that take parameters; the zero value is the
// default for all of them.
type Options struct {
	HashOn       string  // consistent_hash key (see ParseHashOn); "" = client_ip
	VirtualNodes int     // consistent_hash ring points per weight unit; 0 = DefaultVirtualNodes
	BoundedLoad  float64 // consistent_hash bounded-load factor; 0 = off, else > 1 (e.g. 1.25)
}

// policy is one balancing policy as the config names it: the name and how
// to build it over targets. Each policy declares its entry next to its
// type (randomPolicy in random.go, ...), so a name cannot drift from its
// constructor.
type policy struct {
	name  string
	build func(targets []*Target, opts Options) (Balancer, error)
}

// policies is the registry, in the order Names reports it. It is a
// function rather than a package variable so no caller can change it.
func policies() []policy {
	return []policy{
		randomPolicy(),
		roundRobinPolicy(),
		weightedRoundRobinPolicy(),
		consistentHashPolicy(),
		leastConnPolicy(),
		p2cEWMAPolicy(),
	}
}

// Names returns the valid policy names for New.
func Names() []string {
	ps := policies()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	return names
}

// New returns the balancer named name over targets. The targets are shared
// with the caller, who updates their live state; the list itself must not
// change afterwards (build a new balancer on reload). An unknown name, an
// empty or nil target, or invalid Options is an error naming the problem.
func New(name string, targets []*Target, opts Options) (Balancer, error) {
	if len(targets) == 0 {
		return nil, errors.New("balancer: no targets")
	}
	for i, t := range targets {
		if t == nil || t.URL == nil {
			return nil, fmt.Errorf("balancer: target %d has no URL", i)
		}
	}
	// Validate the options whatever the policy, so a typo in hash_on is
	// reported even before someone switches to consistent_hash.
	if opts.HashOn != "" {
		if _, _, err := ParseHashOn(opts.HashOn); err != nil {
			return nil, err
		}
	}
	if err := validateRingOptions(opts.VirtualNodes, opts.BoundedLoad); err != nil {
		return nil, err
	}
	for _, p := range policies() {
		if p.name == name {
			return p.build(targets, opts)
		}
	}
	return nil, fmt.Errorf("balancer: unknown policy %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// ParseHashOn validates a consistent_hash key spec and splits it into kind
// and name: "header:NAME", "cookie:NAME", "query:NAME", "client_ip" or
// "path"; "" means client_ip. Kinds other than header, cookie and query
// return an empty name.
func ParseHashOn(s string) (kind, name string, err error) {
	switch s {
	case "", "client_ip":
		return "client_ip", "", nil
	case "path":
		return "path", "", nil
	}
	kind, name, ok := strings.Cut(s, ":")
	switch {
	case !ok || (kind != "header" && kind != "cookie" && kind != "query"):
		return "", "", fmt.Errorf("balancer: hash_on %q: want header:NAME, cookie:NAME, query:NAME, client_ip or path", s)
	case name == "":
		return "", "", fmt.Errorf("balancer: hash_on %q: missing name after %q", s, kind+":")
	case strings.ContainsAny(name, " \t\r\n:;,="):
		return "", "", fmt.Errorf("balancer: hash_on %q: name %q contains a separator or space", s, name)
	}
	return kind, name, nil
}

func validateRingOptions(virtualNodes int, boundedLoad float64) error {
	if virtualNodes < 0 {
		return fmt.Errorf("balancer: virtual nodes %d: must be >= 0 (0 = default %d)", virtualNodes, DefaultVirtualNodes)
	}
	if boundedLoad != 0 && !(boundedLoad > 1) {
		return fmt.Errorf("balancer: bounded load %v: must be 0 (off) or > 1", boundedLoad)
	}
	return nil
}
