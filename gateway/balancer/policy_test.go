package balancer

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// Properties every policy must have, run against each name New knows.

func TestEveryPolicySkipsUnhealthyAndEjected(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			ts := mkTargets(t, 1, 1, 1, 1)
			b := mustNew(t, name, ts, Options{})
			ts[0].SetHealthy(false)
			ts[1].Eject(farFuture)
			seen := map[*Target]int{}
			for i := range 400 {
				seen[mustPick(t, b, clientReq(i), nil)]++
			}
			if seen[ts[0]] != 0 || seen[ts[1]] != 0 {
				t.Fatalf("picked unhealthy %d times, ejected %d times", seen[ts[0]], seen[ts[1]])
			}
			if seen[ts[2]] == 0 || seen[ts[3]] == 0 {
				t.Fatalf("available targets not both used: %d, %d", seen[ts[2]], seen[ts[3]])
			}

			// An ejection that has expired puts the target back.
			ts[1].Eject(time.Now().Add(-time.Second))
			seen = map[*Target]int{}
			for i := range 400 {
				seen[mustPick(t, b, clientReq(i), nil)]++
			}
			if seen[ts[1]] == 0 || seen[ts[0]] != 0 {
				t.Fatalf("after ejection expired: picks %v", seen)
			}

			for _, x := range ts {
				x.SetHealthy(false)
			}
			wantNoTarget(t, b, clientReq(1), nil)
			ts[2].SetHealthy(true)
			ts[2].Eject(farFuture)
			wantNoTarget(t, b, clientReq(1), nil)
			ts[2].Eject(time.Time{})
			if got := mustPick(t, b, clientReq(1), nil); got != ts[2] {
				t.Fatalf("only available target is %v, picked %v", ts[2], got)
			}
		})
	}
}

func TestEveryPolicyExcludesTried(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			ts := mkTargets(t, 3, 2, 1)
			b := mustNew(t, name, ts, Options{})
			for i := range 200 {
				r := clientReq(i)
				first := mustPick(t, b, r, nil)
				second := mustPick(t, b, r, []*Target{first})
				if second == first {
					t.Fatalf("retry got the tried target %v", first)
				}
				third := mustPick(t, b, r, []*Target{first, second})
				if third == first || third == second {
					t.Fatalf("third attempt got a tried target %v", third)
				}
				wantNoTarget(t, b, r, []*Target{first, second, third})
			}
		})
	}
}

// TestEveryPolicyConcurrent hammers each policy from parallel goroutines
// while targets flap and requests begin and end; run with -race.
func TestEveryPolicyConcurrent(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			ts := mkTargets(t, 5, 1, 1, 2)
			b := mustNew(t, name, ts, Options{BoundedLoad: 1.25, HashOn: "header:X-User"})
			stop := make(chan struct{})
			var flapper sync.WaitGroup
			flapper.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					ts[1].SetHealthy(i%2 == 0)
					if i%3 == 0 {
						ts[2].Eject(farFuture)
					} else {
						ts[2].Eject(time.Time{})
					}
				}
			})
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Go(func() {
					for i := range 1000 {
						r := clientReq(g*1000 + i)
						r.Header.Set("X-User", r.RemoteAddr)
						got, err := b.Pick(r, nil)
						if err != nil {
							errs <- err
							return
						}
						if index(ts, got) < 0 {
							errs <- errors.New("picked a target not in the pool")
							return
						}
						done := got.Begin()
						done(time.Duration(1+index(ts, got))*time.Millisecond, false)
					}
				})
			}
			wg.Wait()
			close(stop)
			flapper.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err) // ts[0] and ts[3] are always available
			}
			for _, x := range ts {
				if x.Inflight() != 0 {
					t.Fatalf("%v inflight %d after all done", x, x.Inflight())
				}
			}
		})
	}
}
