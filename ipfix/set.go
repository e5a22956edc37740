package ipfix

import "encoding/binary"

// Set is one set of a message (RFC 7011 §3.3). Offset is the offset of its set
// header within the message; Body is the set without its 4-byte header and
// aliases the message.
type Set struct {
	ID     uint16
	Offset int
	Body   []byte
}

// SetIterator walks the sets of a message without allocating. Use Sets to make
// one, call Next until it returns false, then check Err.
type SetIterator struct {
	msg []byte
	off int
	end int
	err error
}

// Sets returns an iterator over the sets of msg, which should be a whole message
// (header included). Sets never read past the header's length or len(msg).
func Sets(msg []byte) SetIterator {
	it := SetIterator{msg: msg, off: HeaderLen, end: len(msg)}
	if len(msg) < HeaderLen {
		it.err = parseErr(0, 0, 0, ErrShortMessage)
		return it
	}
	if n := int(binary.BigEndian.Uint16(msg[2:4])); n < it.end {
		if n < HeaderLen {
			it.err = parseErr(0, 0, 0, ErrMessageLength)
			return it
		}
		it.end = n
	}
	return it
}

// Next returns the next set. It returns false at the end of the message or on a
// malformed set, after which Err tells which.
func (it *SetIterator) Next() (Set, bool) {
	if it.err != nil || it.off >= it.end {
		return Set{}, false
	}
	rest := it.end - it.off
	if rest < SetHeaderLen {
		// RFC 7011 §3.3.1: padding lives inside sets, never between them.
		it.err = parseErr(it.off, 0, 0, ErrSetLength)
		return Set{}, false
	}
	b := it.msg[it.off:]
	id := binary.BigEndian.Uint16(b[0:2])
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < SetHeaderLen || n > rest {
		it.err = parseErr(it.off, id, 0, ErrSetLength)
		return Set{}, false
	}
	// RFC 7011 §3.3.2: 0 and 1 are not used (NetFlow v9), 4..255 reserved.
	if id != TemplateSetID && id != OptionsTemplateSetID && id < MinDataSetID {
		it.err = parseErr(it.off, id, 0, ErrSetID)
		return Set{}, false
	}
	s := Set{ID: id, Offset: it.off, Body: b[SetHeaderLen:n:n]}
	it.off += n
	return s, true
}

// Err returns the error that stopped the iteration, or nil at a clean end.
func (it *SetIterator) Err() error {
	if it.err == nil {
		return nil
	}
	return it.err
}

// TemplateRecords returns the number of template records in s, a template or
// options template set, withdrawals excluded; 0 for other sets. A truncated
// record ends the count with ErrTemplate.
func (s Set) TemplateRecords() (int, error) {
	if s.ID != TemplateSetID && s.ID != OptionsTemplateSetID {
		return 0, nil
	}
	n := 0
	for b := s.Body; len(b) >= 4; {
		l, err := templateRecordLength(b, s.ID)
		if err != nil {
			return n, parseErr(s.Offset+SetHeaderLen+len(s.Body)-len(b), s.ID, binary.BigEndian.Uint16(b), err)
		}
		if binary.BigEndian.Uint16(b[2:4]) > 0 {
			n++
		}
		b = b[l:]
	}
	return n, nil
}
