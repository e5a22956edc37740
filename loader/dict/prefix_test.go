package dict

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bruteLPM is the oracle: the longest of prefixes holding a (the later of
// equal ones), or -1.
func bruteLPM(prefixes []netip.Prefix, a netip.Addr) int32 {
	best, bits := int32(-1), -1
	for i, p := range prefixes {
		if p.Contains(a) && p.Bits() >= bits {
			best, bits = int32(i), p.Bits()
		}
	}
	return best
}

func TestPrefixTableEdges(t *testing.T) {
	ps := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("10.1.2.3/32"),
		netip.MustParsePrefix("255.255.255.255/32"),
		netip.MustParsePrefix("::/0"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"),
		netip.MustParsePrefix("10.1.0.0/16"), // a duplicate: the later wins
	}
	tb := buildPrefixTable(ps)
	for a, want := range map[string]int32{
		"9.255.255.255": 0, "10.0.0.0": 1, "10.1.0.0": 8, "10.1.2.2": 8, "10.1.2.3": 3, "10.1.2.4": 8,
		"10.2.0.0": 1, "11.0.0.0": 0, "255.255.255.254": 0, "255.255.255.255": 4, "0.0.0.0": 0,
		"::": 5, "::1": 5, "2001:db8::1": 6, "2001:db9::": 5, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe": 5,
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": 7,
	} {
		addr := netip.MustParseAddr(a)
		assert.Equal(t, want, tb.lookup(toAddr128(addr)), a)
		assert.Equal(t, want, bruteLPM(ps, addr), "oracle "+a)
	}
	// IPv4 prefixes never hold IPv6 addresses and ::/0 holds the IPv4 ones
	// only through their mapped form, which lookups of IPv4 use.
	v6only := buildPrefixTable([]netip.Prefix{netip.MustParsePrefix("2001:db8::/32")})
	assert.Equal(t, int32(-1), v6only.lookup(toAddr128(netip.MustParseAddr("10.0.0.1"))))
	empty := buildPrefixTable(nil)
	assert.Equal(t, int32(-1), empty.lookup(toAddr128(netip.MustParseAddr("10.0.0.1"))))
}

// Random nested and overlapping prefixes of both families agree with the
// brute-force oracle on addresses at, inside and around every prefix.
func TestPrefixTableRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		var ps []netip.Prefix
		n := 1 + r.IntN(60)
		for i := 0; i < n; i++ {
			if r.IntN(2) == 0 {
				// Few distinct high bytes, so prefixes nest often.
				a := netip.AddrFrom4([4]byte{10, byte(r.IntN(3)), byte(r.IntN(4)), byte(r.IntN(256))})
				ps = append(ps, netip.PrefixFrom(a, 8+r.IntN(25)).Masked())
			} else {
				var b [16]byte
				b[0], b[1], b[2] = 0x20, 0x01, byte(r.IntN(3))
				b[7], b[15] = byte(r.IntN(4)), byte(r.IntN(256))
				ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(b), 16+r.IntN(113)).Masked())
			}
		}
		tb := buildPrefixTable(ps)
		for _, p := range ps {
			f, l := prefixRange(p)
			for _, a := range []addr128{f, l, {f.hi, f.lo - 1}, {l.hi, l.lo + 1}, {f.hi, f.lo + 1}} {
				var b [16]byte
				for i := 0; i < 8; i++ {
					b[i] = byte(a.hi >> (56 - 8*i))
					b[8+i] = byte(a.lo >> (56 - 8*i))
				}
				addr := netip.AddrFrom16(b).Unmap()
				require.Equal(t, bruteLPM(ps, addr), tb.lookup(a), "round %d addr %s prefixes %v", round, addr, ps)
			}
		}
	}
}

// Lookups allocate nothing.
func TestLookupAllocs(t *testing.T) {
	d, err := build(SpecOf(SubnetsLocal), [][]string{{"10.0.0.0/8", "A"}, {"2001:db8::/32", "B"}}, nil)
	require.NoError(t, err)
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	s, err := build(SpecOf(Subscribers), [][]string{{"10.0.0.1", "l", "1", "p", "", "", "", "", ""}}, nil)
	require.NoError(t, err)
	a := netip.MustParseAddr("10.0.0.1")
	allocs := testing.AllocsPerRun(100, func() {
		if !d.ContainsV4(0x0a000001) || !d.ContainsV6(&v6) || !d.Contains(a) {
			t.Fatal("lookup missed")
		}
		if sub, ok := s.Subscriber(a); !ok || sub.Login != "l" {
			t.Fatal("subscriber missed")
		}
	})
	assert.Zero(t, allocs)
}
