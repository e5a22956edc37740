package testenv

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// BigDictionaries writes the dictionaries of the loader's enrichment benchmarks
// into dir: 1 M subscribers in 10.0.0.0/8 and 100 k subnets (IPv4 /24–/30 inside
// 10.0.0.0/8 and IPv6 /48–/64 inside 2001:db8::/32, nested in those two covering
// prefixes, so no generated subscriber is filtered out), a vchannel dictionary
// and one-line AS and exclude dictionaries. Same seed, same files.
func BigDictionaries(tb testing.TB, dir string) {
	tb.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	var subnets strings.Builder
	subnets.WriteString("10.0.0.0/8\tALL_V4\n2001:db8::/32\tALL_V6\n")
	for i := 0; i < 100_000-2; i++ {
		if i%5 == 0 {
			fmt.Fprintf(&subnets, "2001:db8:%x:%x::/%d\tV6_%d\n", r.IntN(1<<16), r.IntN(1<<16), 48+r.IntN(17), i)
			continue
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}), 24+r.IntN(7)).Masked()
		fmt.Fprintf(&subnets, "%s\tV4_%d\n", p, i)
	}
	var subs strings.Builder
	for i := 0; i < 1_000_000; i++ {
		fmt.Fprintf(&subs, "10.%d.%d.%d\tlogin_%d\t%d\tport%d\tvendor\tcable\tcontract_%d\tservices\t00:11:22:33:44:55\n",
			i>>16&0xff, i>>8&0xff, i&0xff, i, i%5000, i%48, i)
	}
	var vc strings.Builder
	for i := 0; i < 65536; i += 7 {
		fmt.Fprintf(&vc, "%d\tvc_%d\n", i, i)
	}
	for name, content := range map[string]string{
		dict.SubnetsLocal: subnets.String(), dict.Subscribers: subs.String(), dict.VChannelName: vc.String(),
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
