package dict_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// BigDictionaries writes 1 M subscribers and 100 k subnets (IPv4 /24–/30
// inside 10.0.0.0/8 and IPv6 /48–/64 inside 2001:db8::/32, nested in the
// two covering prefixes) into dir, the sizes of the benchmark.
func writeBigDictionaries(tb testing.TB, dir string) {
	tb.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	var subnets strings.Builder
	subnets.WriteString("10.0.0.0/8\tALL_V4\n2001:db8::/32\tALL_V6\n")
	for i := 0; i < 100_000-2; i++ {
		if i%5 == 0 {
			fmt.Fprintf(&subnets, "2001:db8:%x:%x::/%d\tV6_%d\n", r.IntN(1<<16), r.IntN(1<<16), 48+r.IntN(17), i)
			continue
		}
		bits := 24 + r.IntN(7)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}), bits).Masked()
		fmt.Fprintf(&subnets, "%s\tV4_%d\n", p, i)
	}
	var subs strings.Builder
	for i := 0; i < 1_000_000; i++ {
		fmt.Fprintf(&subs, "10.%d.%d.%d\tlogin_%d\t%d\tport%d\tvendor\tcable\tcontract_%d\tservices\t00:11:22:33:44:55\n",
			i>>16&0xff, i>>8&0xff, i&0xff, i, i%5000, i%48, i)
	}
	for name, content := range map[string]string{
		dict.SubnetsLocal: subnets.String(), dict.Subscribers: subs.String(),
		dict.AsnumLocal: "64500\tLOCAL\n", dict.AsnumExclude: "64501\tX\n", dict.SubnetsExclude: "192.0.2.0/24\tX\n",
	} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "big.txt"), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkLookupPath is the per-row cost of direction, filter and exclude
// (modes 4) plus the subscriber lookup, with 1 M subscribers and 100 k
// subnets loaded, on a mix of IPv4 and IPv6 rows.
func BenchmarkLookupPath(b *testing.B) {
	dir := b.TempDir()
	writeBigDictionaries(b, dir)
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
