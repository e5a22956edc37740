package dict

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Mode is a value of the legacy TRAFFIC_DIR_DEF_MODE, SUBSCRIBER_FILTER_MODE
// and SUBSCRIBER_EXCLUDE_MODE: which dictionaries say that a side of a row
// is "in" (local, or excluded).
type Mode uint8

const (
	ModeOff    Mode = 0 // direction as is; no filter; no exclude
	ModeAS     Mode = 1 // by AS number (fullflow only: clickstream has none)
	ModeCIDR   Mode = 2 // by subnet
	ModeBoth   Mode = 3 // by AS number and by subnet
	ModeEither Mode = 4 // by AS number or by subnet
)

var modeWords = [...]string{"off", "as", "cidr", "both", "either"}

// String returns the mode's configuration word.
func (m Mode) String() string {
	if int(m) < len(modeWords) {
		return modeWords[m]
	}
	return strconv.Itoa(int(m))
}

// ParseMode reads a mode from its word ("off", "as", "cidr", "both",
// "either") or its legacy number ("0".."4").
func ParseMode(s string) (Mode, error) {
	for i, w := range modeWords {
		if s == w || s == strconv.Itoa(i) {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want 0..4 or off, as, cidr, both, either", s)
}

// Flow is what direction, filter and exclude read in a row and change: its
// two sides. HasAS says the stream carries AS numbers (fullflow); without
// them (clickstream) SrcAS and DstAS are ignored.
type Flow struct {
	SrcAddr, DstAddr netip.Addr
	SrcPort, DstPort uint16
	SrcAS, DstAS     uint32
	HasAS            bool
}

// Verdict is what becomes of a row.
type Verdict uint8

const (
	Keep        Verdict = iota // loaded
	DropFilter                 // dropped: the subscriber side is not local (SUBSCRIBER_FILTER_MODE)
	DropExclude                // dropped: the subscriber side is excluded (SUBSCRIBER_EXCLUDE_MODE)
)

// String returns the verdict as a metric reason.
func (v Verdict) String() string {
	switch v {
	case Keep:
		return "keep"
	case DropFilter:
		return "subscriber_filter"
	case DropExclude:
		return "subscriber_exclude"
	}
	return "verdict_" + strconv.Itoa(int(v))
}

// Policy is the three legacy settings together.
type Policy struct {
	Direction Mode // TRAFFIC_DIR_DEF_MODE
	Filter    Mode // SUBSCRIBER_FILTER_MODE
	Exclude   Mode // SUBSCRIBER_EXCLUDE_MODE
}

// Validate checks the three modes.
func (p Policy) Validate() error {
	for _, m := range []Mode{p.Direction, p.Filter, p.Exclude} {
		if m > ModeEither {
			return fmt.Errorf("mode %d: want 0..4", m)
		}
	}
	return nil
}

// Off reports whether the policy changes nothing (every mode 0).
func (p Policy) Off() bool { return p == Policy{} }

// applies reports whether mode m can judge a row: mode 0 never does, and
// mode 1 (by AS) not on a stream without AS numbers.
func applies(m Mode, hasAS bool) bool { return m != ModeOff && (m != ModeAS || hasAS) }

// in reports whether one side (addr, as) is in the AS dictionary asd and/or
// the subnet dictionary nets, as mode m combines them. Without AS numbers,
// modes 3 and 4 judge by subnet alone.
func in(m Mode, asd, nets *Dict, addr netip.Addr, as uint32, hasAS bool) bool {
	// The AS map is cheaper than the subnet search: ask it first and search
	// only when the answer still depends on the subnet.
	byNet := func() bool { return addr.IsValid() && nets.Contains(addr) }
	switch m {
	case ModeAS:
		return hasAS && asd.HasAS(as)
	case ModeCIDR:
		return byNet()
	case ModeBoth:
		if !hasAS {
			return byNet()
		}
		return asd.HasAS(as) && byNet()
	case ModeEither:
		return hasAS && asd.HasAS(as) || byNet()
	}
	return false
}

// Apply decides a row, in three steps (README, "Traffic direction and
// subscriber filters"):
//
//  1. Direction: when the source side is not local and the destination side
//     is (asnum_local_dic / subnets_local_dic, as p.Direction combines
//     them), the sides are swapped, so that the source is the subscriber.
//     Both sides local, or neither: the row stays as the DPI sent it.
//  2. Filter: the source (the subscriber, after step 1) must be local as
//     p.Filter combines the same dictionaries, or the row is dropped.
//  3. Exclude: a source in asnum_exclude_dic / subnets_exclude_dic, as
//     p.Exclude combines them, drops the row.
//
// A mode that cannot judge the row (0, or 1 without AS numbers) skips its
// step. Apply swaps f in place and reports whether it did, so the caller
// swaps the row's other source/destination pairs too. It allocates nothing.
func (p Policy) Apply(s *Set, f *Flow) (swapped bool, v Verdict) {
	// srcLocal is whether the source is local by the direction's mode, known
	// when direction applies; the filter reuses it when its mode is the same
	// (the manual's example sets both to 2).
	srcLocal, known := false, false
	if applies(p.Direction, f.HasAS) {
		srcLocal = in(p.Direction, s.AsnumLocal(), s.SubnetsLocal(), f.SrcAddr, f.SrcAS, f.HasAS)
		if !srcLocal && in(p.Direction, s.AsnumLocal(), s.SubnetsLocal(), f.DstAddr, f.DstAS, f.HasAS) {
			f.SrcAddr, f.DstAddr = f.DstAddr, f.SrcAddr
			f.SrcPort, f.DstPort = f.DstPort, f.SrcPort
			f.SrcAS, f.DstAS = f.DstAS, f.SrcAS
			swapped, srcLocal = true, true
		}
		known = true
	}
	if applies(p.Filter, f.HasAS) {
		local := srcLocal
		if !known || p.Filter != p.Direction {
			local = in(p.Filter, s.AsnumLocal(), s.SubnetsLocal(), f.SrcAddr, f.SrcAS, f.HasAS)
		}
		if !local {
			return swapped, DropFilter
		}
	}
	if applies(p.Exclude, f.HasAS) && in(p.Exclude, s.AsnumExclude(), s.SubnetsExclude(), f.SrcAddr, f.SrcAS, f.HasAS) {
		return swapped, DropExclude
	}
	return swapped, Keep
}
