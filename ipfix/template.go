package ipfix

import (
	"encoding/binary"
)

// FieldSpecifier is one field of a template (RFC 7011 §3.2). ID is the
// information element id without the enterprise bit; EnterpriseNumber is 0 for
// IANA elements. Length is VariableLength (65535) for a variable-length field.
type FieldSpecifier struct {
	ID               uint16
	Length           uint16
	EnterpriseNumber uint32
}

// Template is a template or options template record (RFC 7011 §3.4.1, §3.4.2).
// Templates returned by TemplateCache are shared and must not be modified.
type Template struct {
	ID              uint16
	ScopeFieldCount uint16 // >0 only for options templates
	Options         bool
	Fields          []FieldSpecifier
	FixedLength     int    // sum of fixed lengths (variable fields count 0)
	Variable        bool   // has any variable-length field
	Record          []byte // the template record bytes as on the wire (re-emit verbatim)

	elems []*InfoElement // LookupElement per field, same order as Fields
	// runs[i] is the fixed bytes before variable field i; the last entry is the
	// fixed bytes after the last one. Walking a variable-length record then takes
	// one step per variable field instead of one per field.
	runs   []int
	minLen int
}

// MinRecordLength is the smallest data record the template allows: the fixed
// lengths plus one length octet per variable-length field. A data set tail
// shorter than this is padding (RFC 7011 §3.3.1).
func (t *Template) MinRecordLength() int {
	if t.runs == nil { // a Template built by hand, not by NewTemplate or parsing
		t.init()
	}
	return t.minLen
}

// RecordCount counts the data records in a data set body, skipping the padding
// at its end. A record that overruns the body is ErrFieldLength (the offset in
// the *ParseError is relative to body).
func (t *Template) RecordCount(body []byte) (int, error) {
	if !t.Variable {
		if t.FixedLength <= 0 {
			return 0, parseErr(0, t.ID, t.ID, ErrTemplate)
		}
		return len(body) / t.FixedLength, nil
	}
	minLen := t.MinRecordLength()
	// The walk is recordLength inlined: this loop is the balancer's per-message
	// cost for sequence numbers, and the call and its checks were half of it.
	runs := t.runs
	heads, tail := runs[:len(runs)-1], runs[len(runs)-1]
	// Each record's position depends on the length octets before it, so the
	// walk stalls on every cache miss in turn (a read buffer the kernel just
	// filled is not in the L1 cache): touch every line first, misses overlap.
	n, off := 0, touchLines(body)
	for len(body)-off >= minLen {
		p := off
		for _, fixed := range heads {
			p += fixed
			if p >= len(body) {
				return n, parseErr(off, t.ID, t.ID, ErrFieldLength)
			}
			l := int(body[p])
			p++
			if l == 255 {
				if p+2 > len(body) {
					return n, parseErr(off, t.ID, t.ID, ErrFieldLength)
				}
				l = int(body[p])<<8 | int(body[p+1])
				p += 2
			}
			p += l
		}
		p += tail
		if p > len(body) {
			return n, parseErr(off, t.ID, t.ID, ErrFieldLength)
		}
		off = p
		n++
	}
	return n, nil
}

// touchLines loads one byte of every 64-byte cache line of b, independent
// loads whose misses overlap, and returns 0 (computed from them, so that the
// compiler keeps them).
func touchLines(b []byte) int {
	var x byte
	for i := 0; i < len(b); i += 64 {
		x |= b[i]
	}
	return int(x) & (len(b) >> 62) // len(b) < 1<<62
}

// recordLength returns the length of the data record at the start of b, or
// ErrFieldLength if it overruns b.
func (t *Template) recordLength(b []byte) (int, error) {
	if !t.Variable {
		if len(b) < t.FixedLength {
			return 0, ErrFieldLength
		}
		return t.FixedLength, nil
	}
	if t.runs == nil {
		t.init()
	}
	last := len(t.runs) - 1
	off := 0
	for _, fixed := range t.runs[:last] {
		off += fixed
		if off >= len(b) {
			return 0, ErrFieldLength
		}
		l := int(b[off])
		off++
		if l == 255 {
			if off+2 > len(b) {
				return 0, ErrFieldLength
			}
			l = int(binary.BigEndian.Uint16(b[off:]))
			off += 2
		}
		off += l
	}
	off += t.runs[last]
	if off > len(b) {
		return 0, ErrFieldLength
	}
	return off, nil
}

// init computes the derived fields (FixedLength, Variable, elems) from Fields.
func (t *Template) init() {
	t.FixedLength, t.Variable = 0, false
	t.elems = make([]*InfoElement, len(t.Fields))
	t.runs = t.runs[:0]
	run := 0
	for i, f := range t.Fields {
		if f.Length == VariableLength {
			t.Variable = true
			t.runs = append(t.runs, run)
			run = 0
		} else {
			t.FixedLength += int(f.Length)
			run += int(f.Length)
		}
		t.elems[i] = LookupElement(f.EnterpriseNumber, f.ID)
	}
	t.runs = append(t.runs, run)
	t.minLen = t.FixedLength + len(t.runs) - 1
}

// templateRecordLength returns the length of the template record at the start
// of b in a set with the given id (2 or 3), or an error if it is truncated.
// Withdrawals (field count 0) are 4 bytes.
func templateRecordLength(b []byte, setID uint16) (int, error) {
	if len(b) < 4 {
		return 0, ErrTemplate
	}
	count := int(binary.BigEndian.Uint16(b[2:4]))
	off := 4
	if count == 0 {
		return off, nil
	}
	if setID == OptionsTemplateSetID {
		off += 2
	}
	for i := 0; i < count; i++ {
		if off+4 > len(b) {
			return 0, ErrTemplate
		}
		if b[off]&0x80 != 0 {
			off += 8
		} else {
			off += 4
		}
	}
	if off > len(b) {
		return 0, ErrTemplate
	}
	return off, nil
}

// parseTemplateRecord decodes one template record (already length-checked by
// templateRecordLength) into a new Template. rec is copied.
func parseTemplateRecord(rec []byte, setID uint16) (*Template, error) {
	id := binary.BigEndian.Uint16(rec[0:2])
	count := int(binary.BigEndian.Uint16(rec[2:4]))
	t := &Template{ID: id, Options: setID == OptionsTemplateSetID}
	if id < MinDataSetID {
		return nil, ErrTemplate
	}
	off := 4
	if t.Options {
		t.ScopeFieldCount = binary.BigEndian.Uint16(rec[4:6])
		off = 6
		// RFC 7011 §3.4.2.2: the scope field count MUST NOT be zero.
		if t.ScopeFieldCount == 0 || int(t.ScopeFieldCount) > count {
			return nil, ErrTemplate
		}
	}
	t.Fields = make([]FieldSpecifier, count)
	for i := range t.Fields {
		id := binary.BigEndian.Uint16(rec[off:])
		f := FieldSpecifier{ID: id & 0x7fff, Length: binary.BigEndian.Uint16(rec[off+2:])}
		off += 4
		if id&0x8000 != 0 {
			f.EnterpriseNumber = binary.BigEndian.Uint32(rec[off:])
			off += 4
		}
		t.Fields[i] = f
	}
	t.Record = append([]byte(nil), rec...)
	t.init()
	// A template whose records can be empty would make data sets loop forever.
	if t.MinRecordLength() == 0 {
		return nil, ErrTemplate
	}
	return t, nil
}

// NewTemplate builds a template with the given id (>= 256) and fields, including
// its wire Record.
func NewTemplate(id uint16, fields []FieldSpecifier) *Template {
	return buildTemplate(id, 0, false, fields)
}

// NewOptionsTemplate builds an options template whose first scopeCount fields are
// scope fields (RFC 7011 §3.4.2.2).
func NewOptionsTemplate(id uint16, scopeCount uint16, fields []FieldSpecifier) *Template {
	return buildTemplate(id, scopeCount, true, fields)
}

func buildTemplate(id, scopeCount uint16, options bool, fields []FieldSpecifier) *Template {
	t := &Template{ID: id, ScopeFieldCount: scopeCount, Options: options}
	t.Fields = append([]FieldSpecifier(nil), fields...)
	rec := make([]byte, 0, 6+8*len(fields))
	rec = binary.BigEndian.AppendUint16(rec, id)
	rec = binary.BigEndian.AppendUint16(rec, uint16(len(fields)))
	if options {
		rec = binary.BigEndian.AppendUint16(rec, scopeCount)
	}
	for _, f := range fields {
		if f.EnterpriseNumber != 0 {
			rec = binary.BigEndian.AppendUint16(rec, f.ID|0x8000)
			rec = binary.BigEndian.AppendUint16(rec, f.Length)
			rec = binary.BigEndian.AppendUint32(rec, f.EnterpriseNumber)
		} else {
			rec = binary.BigEndian.AppendUint16(rec, f.ID&0x7fff)
			rec = binary.BigEndian.AppendUint16(rec, f.Length)
		}
	}
	t.Record = rec
	t.init()
	return t
}

// setID returns the set id that carries t's record.
func (t *Template) setID() uint16 {
	if t.Options {
		return OptionsTemplateSetID
	}
	return TemplateSetID
}
