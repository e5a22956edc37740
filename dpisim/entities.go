package dpisim

import (
	"math/rand/v2"
	"strconv"
)

// Subscribers and hosts are computed from their index and the seed instead
// of being stored: a table of 100000 subscribers does not fit in a CPU cache,
// and a cache miss per record costs more than computing a login.

// mix64 is the splitmix64 finalizer, a bijective 64-bit hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// subscribers is the set of subscribers 0..n-1.
type subscribers struct {
	n    int
	key  uint64
	pick powerLaw
	// Affine maps, bijective on their ranges (odd multipliers modulo 2^k;
	// multipliers prime to 10 modulo 10^k), make addresses and numbered
	// logins unique.
	mulV4, addV4             uint32
	mulV6, addV6             uint32
	mulMSISDN, addMSISDN     uint64
	mulContract, addContract uint64
	mulPPPoE, addPPPoE       uint32
}

// subscriber is what records need of one subscriber.
type subscriber struct {
	i    int
	h    uint64 // hash of i: login format and names, MAC, interface id
	v4   uint32 // in 10.0.0.0/8
	v6Hi uint64 // 2001:db8:xxxx:xxxx, a /64 per subscriber
	v6Lo uint64 // random interface id (RFC 8981)
	mac  uint64 // CPE MAC, low 48 bits
}

var ouis = [...]uint64{0x001a2b, 0x00e04c, 0x14cc20, 0x50c7bf, 0x7c8bca, 0xa0f3c1, 0xd8fee3, 0xe894f6, 0xf4f26d, 0x3c846a}

func newSubscribers(r *rand.Rand, n int) subscribers {
	primeTo10 := func(limit uint64) uint64 {
		for {
			if m := r.Uint64N(limit) | 1; m%5 != 0 {
				return m
			}
		}
	}
	return subscribers{
		n:   n,
		key: r.Uint64(),
		// Activity is skewed: a few subscribers produce much more traffic.
		pick:        newPowerLaw(n, 0.6),
		mulV4:       r.Uint32() | 1,
		addV4:       r.Uint32(),
		mulV6:       r.Uint32() | 1,
		addV6:       r.Uint32(),
		mulMSISDN:   primeTo10(1e9),
		addMSISDN:   r.Uint64N(1e9),
		mulContract: primeTo10(1e10),
		addContract: r.Uint64N(1e10),
		mulPPPoE:    r.Uint32() | 1,
		addPPPoE:    r.Uint32(),
	}
}

func (ss *subscribers) get(i int) subscriber {
	h := mix64(ss.key ^ uint64(i))
	u := uint32(i)
	return subscriber{
		i:    i,
		h:    h,
		v4:   10<<24 | (u*ss.mulV4+ss.addV4)&0xffffff,
		v6Hi: 0x20010db8<<32 | uint64(u*ss.mulV6+ss.addV6),
		v6Lo: mix64(h),
		mac:  ouis[h%uint64(len(ouis))]<<24 | (h>>8)&0xffffff,
	}
}

// appendLogin appends the login of s as a variable-length field (logins are
// shorter than 255 bytes). Logins are unique: numbers come from bijections
// of the index, names end with the index.
func (ss *subscribers) appendLogin(b []byte, s *subscriber) []byte {
	at := len(b)
	b = append(b, 0)
	b = ss.login(b, s)
	b[at] = byte(len(b) - at - 1)
	return b
}

func (ss *subscribers) login(b []byte, s *subscriber) []byte {
	i := uint64(s.i)
	switch k := (s.h >> 32) % 100; {
	case k < 45: // mobile number
		b = append(b, '7', '9')
		return appendDigits(b, (i*ss.mulMSISDN+ss.addMSISDN)%1e9, 9)
	case k < 70: // name
		b = append(b, firstNames[(s.h>>8)%uint64(len(firstNames))]...)
		switch (s.h >> 16) % 4 {
		case 0:
			b = append(b, '_')
		case 1:
			b = append(b, '.')
		case 2:
			b = append(b, '-')
		}
		b = append(b, lastNames[(s.h>>20)%uint64(len(lastNames))]...)
		return strconv.AppendUint(b, i, 10)
	case k < 90: // contract number
		return appendDigits(b, (i*ss.mulContract+ss.addContract)%1e10, 10)
	default:
		b = append(b, "pppoe-"...)
		v := (uint32(i)*ss.mulPPPoE + ss.addPPPoE) & 0xffffff
		const hexDigits = "0123456789abcdef"
		for shift := 20; shift >= 0; shift -= 4 {
			b = append(b, hexDigits[v>>shift&0xf])
		}
		return b
	}
}

// loginString returns the login of subscriber i (tests, pools).
func (ss *subscribers) loginString(i int) string {
	s := ss.get(i)
	return string(ss.login(nil, &s))
}

// appendDigits appends v as exactly n decimal digits.
func appendDigits(b []byte, v uint64, n int) []byte {
	var d [20]byte
	for k := n - 1; k >= 0; k-- {
		d[k] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:n]...)
}

// hostSpace is the set of hosts 0..n-1, the popular ones first.
type hostSpace struct {
	n    int
	key  uint64
	pick powerLaw
}

// host is what records need of one host.
type host struct {
	i     int
	h     uint64
	v4    uint32
	as    uint32
	proto uint16 // protocol the DPI identifies
	v6Hi  uint64
	v6Lo  uint64
}

var (
	// Public-looking first octets (no private, loopback, multicast ranges).
	firstOctets = [...]uint32{5, 31, 37, 45, 46, 77, 78, 79, 81, 87, 91, 93, 94, 95, 104, 109, 128, 142, 146, 151, 157, 173, 176, 178, 185, 188, 193, 194, 195, 199, 212, 213, 216, 217}
	// v6Prefixes are the first 32 bits of public-looking server addresses.
	v6Prefixes = [...]uint64{0x2a001450, 0x2a020618, 0x2a032880, 0x2a0206b8, 0x26064700, 0x2a0420e0, 0x2001067c, 0x2a0502a0}
	asns       = [...]uint32{15169, 13238, 47541, 47764, 32934, 13335, 16509, 8075, 20940, 2906, 12389, 8359, 3216, 31133, 8402, 25513, 9123, 60068, 24940, 16276}
	dpiProtos  = [...]uint16{7, 7, 7, 443, 443, 443, 443, 443, 17, 53, 1935, 5222, 3478, 8801, 49152, 49155, 49157, 49160, 49200, 49211}
	hostPrefix = [...]string{"cdn", "node", "edge", "s", "img"}
)

func newHostSpace(r *rand.Rand, n int) hostSpace {
	n = max(n, len(popularHosts))
	// Web popularity is close to Zipf's law with an exponent just below 1;
	// 0.9 also keeps picking cheap (powerLaw's multiplication path).
	return hostSpace{n: n, key: r.Uint64(), pick: newPowerLaw(n, 0.9)}
}

func (hs *hostSpace) get(i int) host {
	h := mix64(hs.key ^ uint64(i)*0x9e3779b97f4a7c15)
	return host{
		i:     i,
		h:     h,
		v4:    firstOctets[h%uint64(len(firstOctets))]<<24 | uint32(h>>8)&0xffffff,
		as:    asns[(h>>32)%uint64(len(asns))],
		proto: dpiProtos[(h>>40)%uint64(len(dpiProtos))],
		v6Hi:  v6Prefixes[(h>>48)%uint64(len(v6Prefixes))]<<32 | uint64(uint32(mix64(h))),
		v6Lo:  1 + (h>>52)%0xffff,
	}
}

// appendName appends the host name of ho as a variable-length field.
func (hs *hostSpace) appendName(b []byte, ho *host) []byte {
	at := len(b)
	b = append(b, 0)
	b = hs.rawName(b, ho)
	b[at] = byte(len(b) - at - 1)
	return b
}

// rawName appends the host name: a popular one, or words, a number and a
// top-level domain under a few common shapes (example.ru, www.example.ru,
// cdn12.example.ru). Generated names may repeat; that only merges their
// popularity.
func (hs *hostSpace) rawName(b []byte, ho *host) []byte {
	if ho.i < len(popularHosts) {
		return append(b, popularHosts[ho.i]...)
	}
	x := mix64(ho.h + 1)
	switch form := (x >> 32) % 10; {
	case form < 4:
	case form < 8:
		b = append(b, subdomains[(x>>36)%uint64(len(subdomains))]...)
		b = append(b, '.')
	default:
		b = append(b, hostPrefix[(x>>36)%uint64(len(hostPrefix))]...)
		b = strconv.AppendUint(b, (x>>40)%64, 10)
		b = append(b, '.')
	}
	b = append(b, words[x%uint64(len(words))]...)
	if (x>>8)&1 == 0 {
		b = append(b, words[(x>>9)%uint64(len(words))]...)
	}
	if (x>>16)%4 == 0 {
		b = strconv.AppendUint(b, (x>>18)%100, 10)
	}
	b = append(b, '.')
	return append(b, tlds[(x>>26)%uint64(len(tlds))]...)
}

// name returns the name of host i (pools, tests).
func (hs *hostSpace) name(i int) string {
	ho := hs.get(i)
	return string(hs.rawName(nil, &ho))
}
