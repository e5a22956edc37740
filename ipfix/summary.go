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
