package testutil

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is a DNS server on a loopback UDP port, speaking the protocol
// through miekg/dns (the library the gateway's discover: resolver uses),
// whose answers a test changes while gateways resolve against it: the
// stand-in for a cluster's DNS in front of a headless Service.
type DNSServer struct {
	// Addr is host:port, the value of a discover: block's resolver.
	Addr string
	srv  *dns.Server

	mu    sync.Mutex
	rrs   []dns.RR
	rcode int
}

// StartDNS starts a DNS server answering NOERROR with no records until
// Set is called. It stops at t's cleanup.
func StartDNS(t testing.TB) *DNSServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNSServer{Addr: pc.LocalAddr().String()}
	d.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	started := make(chan struct{})
	d.srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = d.srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = d.srv.Shutdown() })
	return d
}

// Set makes the server answer NOERROR with the records among lines (zone
// file syntax, e.g. "_http._tcp.jq.test. 1 IN SRV 0 1 8080 a.jq.test.")
// whose name and type match the question.
func (d *DNSServer) Set(lines ...string) error {
	rrs := make([]dns.RR, 0, len(lines))
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			return fmt.Errorf("record %q: %w", l, err)
		}
		rrs = append(rrs, rr)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rrs, d.rcode = rrs, dns.RcodeSuccess
	return nil
}

// Fail makes the server answer every question with rcode (for example
// dns.RcodeServerFailure) until the next Set.
func (d *DNSServer) Fail(rcode int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rcode = rcode
}

func (d *DNSServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	d.mu.Lock()
	rrs, rcode := d.rrs, d.rcode
	d.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	m.Rcode = rcode
	if rcode == dns.RcodeSuccess && len(req.Question) == 1 {
		q := req.Question[0]
		for _, rr := range rrs {
			if strings.EqualFold(rr.Header().Name, q.Name) && rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	_ = w.WriteMsg(m)
}

// SRVLines returns the zone lines of an SRV record set for name (e.g.
// "_http._tcp.jobqueue.wardgate.test.") with one record per base URL
// http://HOST:PORT, each target named tN.<name> with an A record for HOST,
// weight 1 and TTL ttl seconds: what a headless Service's named port
// answers, with every pod on its own port of one loopback address.
func SRVLines(name string, ttl int, baseURLs ...string) ([]string, error) {
	var lines []string
	for i, u := range baseURLs {
		host, port, err := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
		if err != nil {
			return nil, fmt.Errorf("SRV target %q: %w", u, err)
		}
		target := fmt.Sprintf("t%d.%s", i, name)
		lines = append(lines,
			fmt.Sprintf("%s %d IN SRV 0 1 %s %s", name, ttl, port, target),
			fmt.Sprintf("%s %d IN A %s", target, ttl, host))
	}
	return lines, nil
}
