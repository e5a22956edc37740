package dict_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// BenchmarkLookupPath is the per-row cost of direction, filter and exclude
// (modes 4) plus the subscriber lookup, with 1 M subscribers and 100 k
// subnets loaded, on a mix of IPv4 and IPv6 rows.
func BenchmarkLookupPath(b *testing.B) {
	dir := b.TempDir()
	testenv.BigDictionaries(b, dir)
	w, err := dict.New(dict.Config{Dir: dir}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	set := w.Current()
	r := rand.New(rand.NewPCG(1, 1))
	flows := make([]dict.Flow, 4096)
	for i := range flows {
		sub := netip.AddrFrom4([4]byte{10, byte(r.IntN(16)), byte(r.IntN(256)), byte(r.IntN(256))})
		if i%5 == 0 {
			sub = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(r.IntN(256)), byte(r.IntN(256)), 15: 1})
		}
		flows[i] = dict.Flow{SrcAddr: netip.MustParseAddr("203.0.113.5"), DstAddr: sub, SrcPort: 443, DstPort: 50000,
			SrcAS: 15169, DstAS: 64500, HasAS: true}
	}
	p := dict.Policy{Direction: 4, Filter: 4, Exclude: 4}
	subs := set.Subscribers()
	b.ReportAllocs()
	b.ResetTimer()
	found := 0
	for i := 0; b.Loop(); i++ {
		f := flows[i&4095]
		if _, v := p.Apply(set, &f); v != dict.Keep {
			b.Fatal("dropped")
		}
		if _, ok := subs.Subscriber(f.SrcAddr); ok {
			found++
		}
	}
	b.ReportMetric(float64(found)/float64(b.N), "subscriber_hits/row")
}
