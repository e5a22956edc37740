package dpisim

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestSubscribersUnique: every subscriber has its own login, IPv4 address
// and IPv6 /64.
func TestSubscribersUnique(t *testing.T) {
	const n = 100_000
	ss := newSubscribers(rand.New(rand.NewPCG(1, 2)), n)
	logins := make(map[string]int, n)
	v4 := make(map[uint32]int, n)
	v6 := make(map[uint64]int, n)
	formats := map[string]int{}
	for i := range n {
		l := ss.loginString(i)
		if j, dup := logins[l]; dup {
			t.Fatalf("subscribers %d and %d share login %q", j, i, l)
		}
		logins[l] = i
		s := ss.get(i)
		if j, dup := v4[s.v4]; dup {
			t.Fatalf("subscribers %d and %d share an IPv4 address", j, i)
		}
		v4[s.v4] = i
		if j, dup := v6[s.v6Hi]; dup {
			t.Fatalf("subscribers %d and %d share an IPv6 prefix", j, i)
		}
		v6[s.v6Hi] = i
		if s.v4>>24 != 10 || s.v6Hi>>32 != 0x20010db8 {
			t.Fatalf("subscriber %d: addresses %x %x outside 10/8, 2001:db8::/32", i, s.v4, s.v6Hi)
		}
		switch {
		case strings.HasPrefix(l, "pppoe-"):
			formats["pppoe"]++
		case strings.HasPrefix(l, "79") && len(l) == 11:
			formats["msisdn"]++
		case len(l) == 10 && strings.Trim(l, "0123456789") == "":
			formats["contract"]++
		default:
			formats["name"]++
		}
	}
	for f, want := range map[string]float64{"msisdn": 0.45, "name": 0.25, "contract": 0.2, "pppoe": 0.1} {
		if got := float64(formats[f]) / n; got < want-0.02 || got > want+0.02 {
			t.Errorf("login format %s: share %.3f, want %.2f", f, got, want)
		}
	}
}

func TestHostNames(t *testing.T) {
	hs := newHostSpace(rand.New(rand.NewPCG(1, 2)), 50_000)
	distinct := map[string]bool{}
	for i := range hs.n {
		name := hs.name(i)
		if len(name) > 60 || !strings.Contains(name, ".") || strings.ContainsAny(name, " /") {
			t.Fatalf("host %d: bad name %q", i, name)
		}
		distinct[name] = true
	}
	if len(distinct) < 30_000 {
		t.Errorf("%d distinct names of %d hosts", len(distinct), hs.n)
	}
	if hs.name(0) != popularHosts[0] {
		t.Errorf("host 0 is %q, want the most popular", hs.name(0))
	}
}

func TestPowerLaw(t *testing.T) {
	r := rand.NewPCG(1, 2)
	for _, s := range []float64{0, 0.5, 0.6, 0.75, 0.9, 1, 1.3} {
		p := newPowerLaw(1000, s)
		counts := make([]int, 1000)
		for range 200_000 {
			k := p.pick(r)
			if k < 0 || k >= 1000 {
				t.Fatalf("s=%v: pick %d out of range", s, k)
			}
			counts[k]++
		}
		// More popular first: the head outweighs the tail (or, uniform, not).
		head, tail := counts[0]+counts[1]+counts[2], counts[997]+counts[998]+counts[999]
		if s > 0 && head <= 3*tail {
			t.Errorf("s=%v: head %d, tail %d", s, head, tail)
		}
		if s == 0 && (head > 2*tail || tail > 2*head) {
			t.Errorf("uniform: head %d, tail %d", head, tail)
		}
	}
}
