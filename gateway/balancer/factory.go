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

// names lists the policies in the order Names reports them.
var names = [...]string{
	"random",
	"round_robin",
	"weighted_round_robin",
	"consistent_hash",
	"least_conn",
	"p2c_ewma",
}

// Names returns the valid policy names for New.
func Names() []string { return append([]string(nil), names[:]...) }

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
	switch name {
	case "random":
		return NewRandom(targets), nil
	case "round_robin":
		return NewRoundRobin(targets), nil
	case "weighted_round_robin":
		return NewWeightedRoundRobin(targets), nil
	case "consistent_hash":
		return NewConsistentHash(targets, opts.HashOn, opts.VirtualNodes, opts.BoundedLoad)
	case "least_conn":
		return NewLeastConn(targets), nil
	case "p2c_ewma":
		return NewP2CEWMA(targets), nil
	}
	return nil, fmt.Errorf("balancer: unknown policy %q (valid: %s)", name, strings.Join(names[:], ", "))
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
