package dict

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// addr128 is an address as a 128-bit number: IPv6 as is, IPv4 mapped into
// ::ffff:0:0/96 (RFC 4291 §2.5.5.2), so one table holds both families and an
// IPv4 address never matches an IPv6 prefix by accident.
type addr128 struct{ hi, lo uint64 }

func toAddr128(a netip.Addr) addr128 {
	b := a.As16() // IPv4 comes back mapped (::ffff:a.b.c.d)
	return addr128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// v4Addr128 is toAddr128 of an IPv4 address held as a host-order uint32
// (how the loader's rows carry it), without building a netip.Addr.
func v4Addr128(v4 uint32) addr128 { return addr128{0, 0xffff<<32 | uint64(v4)} }

// v6Addr128 is toAddr128 of the 16 bytes of an IPv6 address.
func v6Addr128(b *[16]byte) addr128 {
	return addr128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (a addr128) less(b addr128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a addr128) next() (addr128, bool) {
	if a.lo != ^uint64(0) {
		return addr128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return addr128{a.hi + 1, 0}, true
	}
	return a, false
}

// prefixRange returns the first and last address of p (p is masked).
func prefixRange(p netip.Prefix) (first, last addr128) {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	first = toAddr128(p.Addr())
	last = first
	host := 128 - bits
	switch {
	case host >= 64:
		last.lo = ^uint64(0)
		if host > 64 {
			last.hi |= ^uint64(0) >> (128 - host)
		}
	case host > 0:
		last.lo |= ^uint64(0) >> (64 - host)
	}
	return first, last
}

// prefixTable answers longest-prefix-match queries over a set of IPv4 and
// IPv6 prefixes. Prefixes either nest or do not overlap, so the address
// space cuts into disjoint ranges, each owned by the longest prefix covering
// it (or by none); the table holds the start of each range and its owner,
// and a lookup is one binary search: O(log n), no allocation, and about
// twice as many 24-byte entries as prefixes, where a binary trie would walk
// up to 128 dependent nodes per lookup. Immutable once built; safe for
// concurrent use.
type prefixTable struct {
	starts []addr128
	owner  []int32 // index of the owning prefix, -1 for none
}

// buildPrefixTable builds the table of prefixes (masked); owner values are
// indexes into prefixes. Of two equal prefixes, the later one wins.
func buildPrefixTable(prefixes []netip.Prefix) prefixTable {
	type iv struct {
		first, last addr128
		idx         int32
	}
	ivs := make([]iv, len(prefixes))
	for i, p := range prefixes {
		f, l := prefixRange(p)
		ivs[i] = iv{f, l, int32(i)}
	}
	// By start; at one start the wider prefix first; equal prefixes in file
	// order (stable), so the later one is pushed last and wins.
	slices.SortStableFunc(ivs, func(a, b iv) int {
		switch {
		case a.first.less(b.first):
			return -1
		case b.first.less(a.first):
			return 1
		case b.last.less(a.last):
			return -1
		case a.last.less(b.last):
			return 1
		}
		return 0
	})
	var t prefixTable
	emit := func(at addr128, owner int32) {
		if n := len(t.starts); n > 0 && t.starts[n-1] == at {
			t.owner[n-1] = owner
			return
		}
		if n := len(t.owner); n > 0 && t.owner[n-1] == owner {
			return
		}
		t.starts = append(t.starts, at)
		t.owner = append(t.owner, owner)
	}
	var stack []iv
	// pop closes the innermost open prefix: after its end the enclosing one
	// (or none) owns the addresses again.
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		after, ok := top.last.next()
		if !ok {
			return
		}
		owner := int32(-1)
		if len(stack) > 0 {
			owner = stack[len(stack)-1].idx
		}
		emit(after, owner)
	}
	for _, v := range ivs {
		for len(stack) > 0 && stack[len(stack)-1].last.less(v.first) {
			pop()
		}
		emit(v.first, v.idx)
		stack = append(stack, v)
	}
	for len(stack) > 0 {
		pop()
	}
	return t
}

// lookup returns the index of the longest prefix holding a, or -1.
func (t *prefixTable) lookup(a addr128) int32 {
	// The last start <= a.
	lo, hi := 0, len(t.starts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if a.less(t.starts[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo == 0 {
		return -1
	}
	return t.owner[lo-1]
}
