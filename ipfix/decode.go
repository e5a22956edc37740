package ipfix

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"net"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// Value is one field of a decoded data record. Raw aliases the message and is
// valid only as long as the message is. Element is nil for unknown elements.
type Value struct {
	Field   FieldSpecifier
	Element *InfoElement
	Raw     []byte
}

// Uint decodes an unsigned integer of any reduced size 1..8 (RFC 7011 §6.2);
// it returns 0 for other lengths.
func (v Value) Uint() uint64 {
	b := v.Raw
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	case 3, 5, 6, 7:
		var x uint64
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
		return x
	}
	return 0
}

// Int decodes a signed integer of any reduced size 1..8, sign-extended.
func (v Value) Int() int64 {
	n := len(v.Raw)
	if n == 0 || n > 8 {
		return 0
	}
	shift := uint(64 - 8*n)
	return int64(v.Uint()<<shift) >> shift
}

// Addr decodes a 4-byte IPv4 or 16-byte IPv6 address; other lengths give the
// zero Addr.
func (v Value) Addr() netip.Addr {
	switch len(v.Raw) {
	case 4:
		return netip.AddrFrom4([4]byte(v.Raw))
	case 16:
		return netip.AddrFrom16([16]byte(v.Raw))
	}
	return netip.Addr{}
}

// MAC returns the raw bytes as a hardware address (aliasing Raw).
func (v Value) MAC() net.HardwareAddr { return net.HardwareAddr(v.Raw) }

// ntpEpochOffset is the number of seconds from 1900-01-01 (NTP era 0) to the
// Unix epoch.
const ntpEpochOffset = 2208988800

// Time decodes a timestamp per the element's type (RFC 7011 §6.1.7-6.1.10):
// dateTimeSeconds (Unix seconds; also the 43823 TIME_STAMP),
// dateTimeMilliseconds (Unix milliseconds), dateTimeMicroseconds and
// dateTimeNanoseconds (NTP 64-bit timestamps). Other types, unknown elements
// and bad lengths give the zero time. Times are UTC.
func (v Value) Time() time.Time {
	if v.Element == nil {
		return time.Time{}
	}
	switch v.Element.Type {
	case DateTimeSeconds:
		if len(v.Raw) > 0 && len(v.Raw) <= 8 {
			return time.Unix(int64(v.Uint()), 0).UTC()
		}
	case DateTimeMilliseconds:
		if len(v.Raw) > 0 && len(v.Raw) <= 8 {
			return time.UnixMilli(int64(v.Uint())).UTC()
		}
	case DateTimeMicroseconds, DateTimeNanoseconds:
		if len(v.Raw) == 8 {
			sec := int64(binary.BigEndian.Uint32(v.Raw)) - ntpEpochOffset
			frac := uint64(binary.BigEndian.Uint32(v.Raw[4:]))
			if v.Element.Type == DateTimeMicroseconds {
				// RFC 7011 §6.1.9: the lower 11 bits of the fraction are ignored.
				frac &^= 0x7ff
			}
			nsec := int64(frac * 1e9 >> 32)
			return time.Unix(sec, nsec).UTC()
		}
	}
	return time.Time{}
}

// Float decodes float32/float64 elements; integer elements are converted.
// Unknown elements of 4 or 8 bytes decode as IEEE floats.
func (v Value) Float() float64 {
	t := OctetArray
	if v.Element != nil {
		t = v.Element.Type
	}
	switch t {
	case Signed8, Signed16, Signed32, Signed64:
		return float64(v.Int())
	case Unsigned8, Unsigned16, Unsigned32, Unsigned64:
		return float64(v.Uint())
	}
	switch len(v.Raw) {
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(v.Raw)))
	case 8:
		return math.Float64frombits(binary.BigEndian.Uint64(v.Raw))
	}
	return 0
}

// String formats the value as text by the element's type: decimal integers,
// IP and MAC addresses, RFC 3339 UTC times, strings quoted as Go strings
// (strconv.Quote), booleans, and hex for octet arrays and unknown elements.
// It allocates; do not use it on hot paths.
func (v Value) String() string {
	t := OctetArray
	if v.Element != nil {
		t = v.Element.Type
	}
	switch t {
	case Unsigned8, Unsigned16, Unsigned32, Unsigned64:
		if len(v.Raw) >= 1 && len(v.Raw) <= 8 {
			return strconv.FormatUint(v.Uint(), 10)
		}
	case Signed8, Signed16, Signed32, Signed64:
		if len(v.Raw) >= 1 && len(v.Raw) <= 8 {
			return strconv.FormatInt(v.Int(), 10)
		}
	case Float32, Float64:
		if len(v.Raw) == 4 {
			return strconv.FormatFloat(v.Float(), 'g', -1, 32)
		}
		if len(v.Raw) == 8 {
			return strconv.FormatFloat(v.Float(), 'g', -1, 64)
		}
	case Boolean:
		// RFC 7011 §6.1.5: 1 is true, 2 is false.
		if len(v.Raw) == 1 && v.Raw[0] == 1 {
			return "true"
		}
		if len(v.Raw) == 1 && v.Raw[0] == 2 {
			return "false"
		}
	case MACAddress:
		if len(v.Raw) == 6 {
			return v.MAC().String()
		}
	case String:
		if utf8.Valid(v.Raw) {
			return strconv.Quote(string(v.Raw))
		}
	case DateTimeSeconds, DateTimeMilliseconds, DateTimeMicroseconds, DateTimeNanoseconds:
		if tm := v.Time(); !tm.IsZero() {
			return tm.Format(time.RFC3339Nano)
		}
	case IPv4Address, IPv6Address:
		if a := v.Addr(); a.IsValid() {
			return a.String()
		}
	}
	return hex.EncodeToString(v.Raw)
}

// Record is one decoded data record. Values are reused between records: copy
// what you keep.
type Record struct {
	ObservationDomainID uint32
	Template            *Template
	Values              []Value
}

// Decoder decodes the data records of the messages of one exporter session,
// learning templates into its cache as they arrive. Not safe for concurrent
// use; in steady state it allocates nothing per message or record.
type Decoder struct {
	cache *TemplateCache
	rec   Record
	skip  int
}

// NewDecoder returns a decoder that learns into and looks up templates in cache.
func NewDecoder(cache *TemplateCache) *Decoder {
	return &Decoder{cache: cache}
}

// Cache returns the decoder's template cache.
func (d *Decoder) Cache() *TemplateCache { return d.cache }

// SkippedSets returns the number of data sets the last Decode dropped (unknown
// template or malformed records).
func (d *Decoder) SkippedSets() int { return d.skip }

// Decode learns the templates of msg (in set order, so a template defined
// before a data set in the same message applies to it), then calls fn for each
// data record. Record and its Values are valid only during fn. Unknown-template
// sets are skipped (errors.Is(err, ErrUnknownTemplate)) and a data set whose
// records overrun it is dropped from that record on (ErrFieldLength); the first
// such error is returned after all good records. A malformed set structure
// stops decoding. An error from fn stops decoding and is returned as is.
// msg should have passed CheckMessage.
func (d *Decoder) Decode(msg []byte, now time.Time, fn func(r *Record) error) error {
	d.skip = 0
	if len(msg) < HeaderLen {
		return parseErr(0, 0, 0, ErrShortMessage)
	}
	c := d.cache
	c.tick(now)
	odid := binary.BigEndian.Uint32(msg[12:16])
	d.rec.ObservationDomainID = odid
	var first error
	it := Sets(msg)
	for {
		s, ok := it.Next()
		if !ok {
			break
		}
		if s.ID < MinDataSetID {
			if err := c.learnSet(odid, s); err != nil && first == nil {
				first = err
			}
			continue
		}
		t := c.Lookup(odid, s.ID)
		if t == nil {
			d.skip++
			if first == nil {
				first = parseErr(s.Offset, s.ID, s.ID, ErrUnknownTemplate)
			}
			continue
		}
		perr, fnErr := d.decodeSet(t, s, fn)
		if fnErr != nil {
			return fnErr
		}
		if perr != nil {
			d.skip++
			if first == nil {
				first = perr
			}
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return first
}

// decodeSet calls fn for each record of data set s. It returns a *ParseError for
// a malformed set, or the error of fn.
func (d *Decoder) decodeSet(t *Template, s Set, fn func(r *Record) error) (perr *ParseError, fnErr error) {
	n := len(t.Fields)
	if cap(d.rec.Values) < n {
		d.rec.Values = make([]Value, n, n+n/2)
	}
	vals := d.rec.Values[:n]
	d.rec.Values = vals
	d.rec.Template = t
	elems := t.elems
	if len(elems) != n {
		elems = nil
	}
	for i := range vals {
		vals[i].Field = t.Fields[i]
		if elems != nil {
			vals[i].Element = elems[i]
		} else {
			vals[i].Element = LookupElement(t.Fields[i].EnterpriseNumber, t.Fields[i].ID)
		}
	}
	// Derive the record shape from Fields rather than trusting FixedLength and
	// Variable, which a hand-built Template may get wrong.
	minLen, variable := 0, false
	for i := range vals {
		if l := vals[i].Field.Length; l == VariableLength {
			variable = true
			minLen++
		} else {
			minLen += int(l)
		}
	}
	if minLen <= 0 {
		return parseErr(s.Offset, s.ID, s.ID, ErrTemplate), nil
	}
	b := s.Body
	off := 0
	for len(b)-off >= minLen {
		start := off
		if variable {
			for i := range vals {
				l := int(vals[i].Field.Length)
				if l == int(VariableLength) {
					if off >= len(b) {
						return parseErr(s.Offset+SetHeaderLen+start, s.ID, s.ID, ErrFieldLength), nil
					}
					l = int(b[off])
					off++
					if l == 255 {
						if off+2 > len(b) {
							return parseErr(s.Offset+SetHeaderLen+start, s.ID, s.ID, ErrFieldLength), nil
						}
						l = int(binary.BigEndian.Uint16(b[off:]))
						off += 2
					}
				}
				if l > len(b)-off {
					return parseErr(s.Offset+SetHeaderLen+start, s.ID, s.ID, ErrFieldLength), nil
				}
				vals[i].Raw = b[off : off+l : off+l]
				off += l
			}
		} else {
			for i := range vals {
				l := int(vals[i].Field.Length)
				vals[i].Raw = b[off : off+l : off+l]
				off += l
			}
		}
		if err := fn(&d.rec); err != nil {
			return nil, err
		}
	}
	return nil, nil
}
