package testutil_test

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/wardgate/wardgate/internal/testutil"
)

// TestDNSServer asks the server over UDP, as the gateway's resolver does:
// the SRV records of SRVLines with their ports, the A record of each
// target, and the response code set by Fail.
func TestDNSServer(t *testing.T) {
	const name = "_http._tcp.jq.test."
	d := testutil.StartDNS(t)
	lines, err := testutil.SRVLines(name, 1, "http://127.0.0.1:9001", "http://127.0.0.2:9002")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Set(lines...); err != nil {
		t.Fatal(err)
	}
	ask := func(qname string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(qname, qtype)
		r, _, err := new(dns.Client).Exchange(m, d.Addr)
		if err != nil {
			t.Fatalf("query %s: %v", qname, err)
		}
		return r
	}
	r := ask(name, dns.TypeSRV)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Fatalf("SRV answer: rcode %d, %v", r.Rcode, r.Answer)
	}
	srv := r.Answer[1].(*dns.SRV)
	if srv.Port != 9002 || srv.Hdr.Ttl != 1 {
		t.Fatalf("second SRV record %v, want port 9002 and TTL 1", srv)
	}
	a := ask(srv.Target, dns.TypeA)
	if len(a.Answer) != 1 || a.Answer[0].(*dns.A).A.String() != "127.0.0.2" {
		t.Fatalf("A of %s: %v, want 127.0.0.2", srv.Target, a.Answer)
	}
	d.Fail(dns.RcodeServerFailure)
	if r := ask(name, dns.TypeSRV); r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
		t.Fatalf("after Fail: rcode %d, %v", r.Rcode, r.Answer)
	}
	if _, err := testutil.SRVLines(name, 1, "not a URL"); err == nil {
		t.Fatal("SRVLines accepted a base URL without a port")
	}
}
