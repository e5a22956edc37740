package ipfix

import "encoding/binary"

// Summary is what one walk over a message's sets finds, by the templates of a
// cache: what a balancer needs to route, number and record a message without
// walking its sets again.
type Summary struct {
	// Records is the data records of the sets whose template is known.
	Records int
	// DataSets is the data sets, known template or not.
	DataSets int
	// OptionRecords are the records (among Records) of data sets whose
	// template is an options template (exporter statistics, sampling...).
	OptionRecords int
	// Unknown is the data sets whose template the cache does not know.
	Unknown int
	// TemplateSets is the template and options template sets.
	TemplateSets int
	// TemplateStart and TemplateEnd span the template sets, from the first
	// one's set header to the end of the last one (0, 0: none); data sets may
	// lie in between.
	TemplateStart, TemplateEnd int
}

// Summarize walks the sets of msg once, counting its data records by the
// templates of domain odid in c. It reads set headers in place (this runs for
// every message a balancer forwards); a message it finds odd is walked again
// with SetIterator, whose errors say what and where. An error in a data set
// of a known template fails the summary.
func Summarize(c *TemplateCache, odid uint32, msg []byte) (Summary, error) {
	var sum Summary
	end := len(msg)
	if end < HeaderLen || int(binary.BigEndian.Uint16(msg[2:4])) != end {
		return summarizeSets(c, odid, msg)
	}
	for off := HeaderLen; off < end; {
		if end-off < SetHeaderLen {
			return summarizeSets(c, odid, msg)
		}
		id := binary.BigEndian.Uint16(msg[off:])
		n := int(binary.BigEndian.Uint16(msg[off+2:]))
		if n < SetHeaderLen || n > end-off {
			return summarizeSets(c, odid, msg)
		}
		switch {
		case id == TemplateSetID || id == OptionsTemplateSetID:
			sum.template(off, off+n)
		case id >= MinDataSetID:
			sum.DataSets++
			t := c.Lookup(odid, id)
			if t == nil {
				sum.Unknown++
				break
			}
			k, err := t.RecordCount(msg[off+SetHeaderLen : off+n])
			if err != nil {
				return summarizeSets(c, odid, msg)
			}
			sum.Records += k
			if t.Options {
				sum.OptionRecords += k
			}
		default:
			return summarizeSets(c, odid, msg)
		}
		off += n
	}
	return sum, nil
}

// template counts a template set from start to end.
func (s *Summary) template(start, end int) {
	if s.TemplateSets == 0 {
		s.TemplateStart = start
	}
	s.TemplateSets++
	s.TemplateEnd = end
}

// summarizeSets is Summarize with SetIterator, for messages Summarize finds
// odd: its errors say what and where.
func summarizeSets(c *TemplateCache, odid uint32, msg []byte) (Summary, error) {
	var sum Summary
	it := Sets(msg)
	for set, ok := it.Next(); ok; set, ok = it.Next() {
		switch {
		case set.ID == TemplateSetID || set.ID == OptionsTemplateSetID:
			sum.template(set.Offset, set.Offset+SetHeaderLen+len(set.Body))
		case set.ID >= MinDataSetID:
			sum.DataSets++
			t := c.Lookup(odid, set.ID)
			if t == nil {
				sum.Unknown++
				continue
			}
			n, err := t.RecordCount(set.Body)
			if err != nil {
				return Summary{}, err
			}
			sum.Records += n
			if t.Options {
				sum.OptionRecords += n
			}
		}
	}
	return sum, it.Err()
}

// SummarizePair summarizes two messages as two Summarize calls would, with
// ok, when each is a header and one data set of a known template with
// variable-length fields (a DPI's usual message): walking such records is a
// chain of dependent loads, one length octet after the other, and the two
// messages' chains then run side by side. Otherwise, or on anything odd in a
// set, ok is false and nothing is summarized: call Summarize, whose errors
// say what and where.
func SummarizePair(c *TemplateCache, odidA uint32, a []byte, odidB uint32, b []byte) (sa, sb Summary, ok bool) {
	ta, ba := oneDataSet(c, odidA, a)
	if ta == nil {
		return sa, sb, false
	}
	tb, bb := oneDataSet(c, odidB, b)
	if tb == nil {
		return sa, sb, false
	}
	na, nb, ok := recordCountPair(ta, ba, tb, bb)
	if !ok {
		return sa, sb, false
	}
	sa = Summary{Records: na, DataSets: 1}
	if ta.Options {
		sa.OptionRecords = na
	}
	sb = Summary{Records: nb, DataSets: 1}
	if tb.Options {
		sb.OptionRecords = nb
	}
	return sa, sb, true
}

// oneDataSet returns the template and body of msg's only set when it is a data
// set of a known template with variable-length fields, else nil.
func oneDataSet(c *TemplateCache, odid uint32, msg []byte) (*Template, []byte) {
	if len(msg) < HeaderLen+SetHeaderLen || int(binary.BigEndian.Uint16(msg[2:4])) != len(msg) {
		return nil, nil
	}
	id := binary.BigEndian.Uint16(msg[HeaderLen:])
	n := int(binary.BigEndian.Uint16(msg[HeaderLen+2:]))
	if id < MinDataSetID || n != len(msg)-HeaderLen {
		return nil, nil
	}
	t := c.Lookup(odid, id)
	if t == nil || !t.Variable {
		return nil, nil
	}
	t.MinRecordLength() // builds t.runs for a Template built by hand
	return t, msg[HeaderLen+SetHeaderLen:]
}

// recordCountPair is RecordCount of a by ta and of b by tb, walking one record
// of each in turn while both have one left; ok is false when the templates
// differ in their number of variable-length fields, where a length octet is
// 255 (a long string: RecordCount's walk) and where RecordCount would fail.
func recordCountPair(ta *Template, a []byte, tb *Template, b []byte) (na, nb int, ok bool) {
	if len(ta.runs) != len(tb.runs) {
		return 0, 0, false
	}
	// The usual case: one template, or an IPv4 and an IPv6 one. Each record's
	// length octets of a and b are loaded together: two chains of dependent
	// loads side by side instead of one after the other.
	headsA, tailA := ta.runs[:len(ta.runs)-1], ta.runs[len(ta.runs)-1]
	headsB, tailB := tb.runs[:len(headsA)], tb.runs[len(headsA)]
	minA, minB := ta.minLen, tb.minLen
	oa, ob := touchLines(a), touchLines(b)
	for len(a)-oa >= minA && len(b)-ob >= minB {
		pa, pb := oa, ob
		for i, fixed := range headsA {
			pa += fixed
			pb += headsB[i]
			if pa >= len(a) || pb >= len(b) {
				return 0, 0, false
			}
			la, lb := int(a[pa]), int(b[pb])
			if la == 255 || lb == 255 {
				return 0, 0, false
			}
			pa += 1 + la
			pb += 1 + lb
		}
		pa += tailA
		pb += tailB
		if pa > len(a) || pb > len(b) {
			return 0, 0, false
		}
		oa, ob = pa, pb
		na++
		nb++
	}
	ka, err := ta.RecordCount(a[oa:])
	if err != nil {
		return 0, 0, false
	}
	kb, err := tb.RecordCount(b[ob:])
	if err != nil {
		return 0, 0, false
	}
	return na + ka, nb + kb, true
}
