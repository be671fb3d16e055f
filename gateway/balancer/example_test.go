package balancer_test

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/wardgate/wardgate/gateway/balancer"
)

// A balancer picks among targets whose live state the caller keeps: here
// one is passively ejected for a minute and round_robin skips it.
func ExampleNew() {
	var targets []*balancer.Target
	for _, raw := range []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"} {
		u, err := url.Parse(raw)
		if err != nil {
			panic(err)
		}
		targets = append(targets, balancer.NewTarget(u, 1))
	}
	b, err := balancer.New("round_robin", targets, balancer.Options{})
	if err != nil {
		panic(err)
	}
	targets[1].Eject(time.Now().Add(time.Minute))

	req := httptest.NewRequest("GET", "/v1/payloads", nil)
	for range 4 {
		t, err := b.Pick(req, nil)
		if err != nil {
			panic(err)
		}
		fmt.Println(t)
	}
	_, err = balancer.New("least_connections", targets, balancer.Options{})
	fmt.Println(err)
	// Output:
	// http://10.0.0.1:8080
	// http://10.0.0.3:8080
	// http://10.0.0.1:8080
	// http://10.0.0.3:8080
	// balancer: unknown policy "least_connections" (valid: random, round_robin, weighted_round_robin, consistent_hash, least_conn, p2c_ewma)
}
