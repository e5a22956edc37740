package ipfix

import "encoding/binary"

// Protocol constants (RFC 7011 §3).
const (
	Version              uint16 = 10
	HeaderLen                   = 16
	SetHeaderLen                = 4
	MaxMessageLen               = 65535
	TemplateSetID        uint16 = 2
	OptionsTemplateSetID uint16 = 3
	MinDataSetID         uint16 = 256
	VariableLength       uint16 = 65535
	EnterpriseDPI        uint32 = 43823
)

// Header is the IPFIX message header (RFC 7011 §3.1).
type Header struct {
	Version             uint16
	Length              uint16
	ExportTime          uint32
	SequenceNumber      uint32
	ObservationDomainID uint32
}

// ParseHeader decodes the message header at the start of b. It checks that b
// holds 16 bytes (ErrShortMessage), the version (ErrVersion) and that the length
// is at least 16 (ErrMessageLength); it does not check that b holds Length bytes.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, parseErr(0, 0, 0, ErrShortMessage)
	}
	h := Header{
		Version:             binary.BigEndian.Uint16(b[0:2]),
		Length:              binary.BigEndian.Uint16(b[2:4]),
		ExportTime:          binary.BigEndian.Uint32(b[4:8]),
		SequenceNumber:      binary.BigEndian.Uint32(b[8:12]),
		ObservationDomainID: binary.BigEndian.Uint32(b[12:16]),
	}
	if h.Version != Version {
		return h, parseErr(0, 0, 0, ErrVersion)
	}
	if h.Length < HeaderLen {
		return h, parseErr(0, 0, 0, ErrMessageLength)
	}
	return h, nil
}

// PutHeader writes h into b[:16]. b must hold at least 16 bytes.
func PutHeader(b []byte, h Header) {
	_ = b[15]
	binary.BigEndian.PutUint16(b[0:2], h.Version)
	binary.BigEndian.PutUint16(b[2:4], h.Length)
	binary.BigEndian.PutUint32(b[4:8], h.ExportTime)
	binary.BigEndian.PutUint32(b[8:12], h.SequenceNumber)
	binary.BigEndian.PutUint32(b[12:16], h.ObservationDomainID)
}

// SetSequenceNumber rewrites the sequence number of msg in place.
// msg must hold at least 16 bytes.
func SetSequenceNumber(msg []byte, seq uint32) {
	binary.BigEndian.PutUint32(msg[8:12], seq)
}

// FrameLength frames a TCP byte stream (RFC 7011 §10.4.1): it returns the length
// of the first message in b.
//
//   - (0, nil): b holds only part of a message (b may be shorter than 16 bytes);
//     read more and call again with the bytes appended.
//   - (n, nil): b[:n] is one complete message whose version and length are valid.
//   - (0, err): the stream lost its framing (ErrVersion, ErrMessageLength); close it.
//
// It reads only the first four bytes, so framing costs nothing per byte; set
// structure is checked by CheckMessage.
func FrameLength(b []byte) (int, error) {
	if len(b) < 4 {
		// Fail fast on a bad version even before the length arrives.
		if len(b) >= 2 && binary.BigEndian.Uint16(b) != Version {
			return 0, parseErr(0, 0, 0, ErrVersion)
		}
		return 0, nil
	}
	if binary.BigEndian.Uint16(b) != Version {
		return 0, parseErr(0, 0, 0, ErrVersion)
	}
	// RFC 7011 §3.1: Length counts the 16-byte header too, so a smaller
	// value means we lost the message boundary and must resynchronise.
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < HeaderLen {
		return 0, parseErr(0, 0, 0, ErrMessageLength)
	}
	if len(b) < n {
		return 0, nil
	}
	return n, nil
}

// CheckMessage validates a complete message: the header (ParseHeader), that msg
// holds exactly Length bytes (ErrShortMessage if fewer, ErrMessageLength if more),
// and that the sets tile the message: every set length at least 4 and within the
// message, no trailing bytes, no reserved set id (ErrSetLength, ErrSetID).
// Template and data records are checked by TemplateCache.Learn and Decoder.
func CheckMessage(msg []byte) error {
	h, err := ParseHeader(msg)
	if err != nil {
		return err
	}
	if len(msg) < int(h.Length) {
		return parseErr(0, 0, 0, ErrShortMessage)
	}
	if len(msg) > int(h.Length) {
		return parseErr(int(h.Length), 0, 0, ErrMessageLength)
	}
	it := Sets(msg)
	for {
		if _, ok := it.Next(); !ok {
			break
		}
	}
	return it.Err()
}

// SplitDatagram calls fn for each message of a UDP datagram (RFC 7011 §10.3.3
// allows several per datagram). A message whose sets are malformed
// (CheckMessage) is counted in bad and skipped; when the framing itself fails
// (short, bad version or length) the rest of the datagram is dropped and counted
// as one. The first error is returned. msg aliases d.
func SplitDatagram(d []byte, fn func(msg []byte)) (bad int, err error) {
	off := 0
	for off < len(d) {
		rest := d[off:]
		h, herr := ParseHeader(rest)
		if herr == nil && int(h.Length) > len(rest) {
			herr = parseErr(0, 0, 0, ErrShortMessage)
		}
		if herr != nil {
			shiftOffset(herr, off)
			if err == nil {
				err = herr
			}
			return bad + 1, err
		}
		msg := rest[:h.Length]
		if cerr := CheckMessage(msg); cerr != nil {
			shiftOffset(cerr, off)
			if err == nil {
				err = cerr
			}
			bad++
		} else {
			fn(msg)
		}
		off += int(h.Length)
	}
	return bad, err
}

// shiftOffset adds base to the offset of a *ParseError.
func shiftOffset(err error, base int) {
	if pe, ok := err.(*ParseError); ok {
		pe.Offset += base
	}
}
