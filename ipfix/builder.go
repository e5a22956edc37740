package ipfix

import "encoding/binary"

// MessageBuilder appends sets and records to one message at the end of a
// caller's buffer, never past a maximum size (except for a single record too
// large for any message), and finishes its header. It is the one framing of
// outgoing messages: the Encoder, Repack, template messages and ipfix-gen use
// it. The zero value is not usable: make one with NewMessageBuilder.
type MessageBuilder struct {
	buf      *[]byte // the caller's buffer; the open message is (*buf)[start:]
	maxSize  int
	start    int // offset of the open message in *buf, -1 when none
	setStart int // offset of the open set header in *buf, -1 when none
	setID    uint16
	records  uint32 // data records in the open message
}

// NewMessageBuilder returns a builder appending messages of at most maxSize
// bytes (0 or above 65535 means 65535) to *buf. The builder and the caller
// share *buf: the caller may read it and cut complete messages off its front
// (see Moved), but must not append to it while a message is open.
func NewMessageBuilder(buf *[]byte, maxSize int) MessageBuilder {
	if maxSize <= 0 || maxSize > MaxMessageLen {
		maxSize = MaxMessageLen
	}
	return MessageBuilder{buf: buf, maxSize: maxSize, start: -1, setStart: -1}
}

// MaxSize returns the largest message the builder makes.
func (b *MessageBuilder) MaxSize() int { return b.maxSize }

// Open reports whether a message is open.
func (b *MessageBuilder) Open() bool { return b.start >= 0 }

// Start returns the offset of the open message in the buffer, -1 when none.
func (b *MessageBuilder) Start() int { return b.start }

// Records returns the data records appended to the open message.
func (b *MessageBuilder) Records() uint32 { return b.records }

// Fits reports whether n more bytes in a set of setID fit the open message
// (a set header counted when setID is not the open set). With no message open
// it reports true: Append then opens one.
func (b *MessageBuilder) Fits(setID uint16, n int) bool {
	if b.start < 0 {
		return true
	}
	if b.setStart < 0 || b.setID != setID {
		n += SetHeaderLen
	}
	return len(*b.buf)-b.start+n <= b.maxSize
}

// Append appends rec to the set setID of the open message, opening the
// message (a header to finish) and the set as needed; records is how many
// data records rec holds (0 for template records). It does not check the
// size: call Fits first, and Finish when it fails.
func (b *MessageBuilder) Append(setID uint16, rec []byte, records uint32) {
	buf := *b.buf
	if b.start < 0 {
		b.start = len(buf)
		buf = append(buf, make([]byte, HeaderLen)...)
	}
	if b.setStart < 0 || b.setID != setID {
		b.closeSet(buf)
		b.setStart, b.setID = len(buf), setID
		buf = binary.BigEndian.AppendUint16(buf, setID)
		buf = append(buf, 0, 0)
	}
	*b.buf = append(buf, rec...)
	b.records += records
}

func (b *MessageBuilder) closeSet(buf []byte) {
	if b.setStart >= 0 {
		binary.BigEndian.PutUint16(buf[b.setStart+2:], uint16(len(buf)-b.setStart))
		b.setStart = -1
	}
}

// Finish closes the open message: it writes the set length and the header
// (version, length, exportTime, seq, odid) and returns the message, a slice
// of the buffer, with the number of data records it holds. With no message
// open it returns nil, 0.
func (b *MessageBuilder) Finish(exportTime, seq, odid uint32) (msg []byte, records uint32) {
	if b.start < 0 {
		return nil, 0
	}
	buf := *b.buf
	b.closeSet(buf)
	msg = buf[b.start:]
	PutHeader(msg, Header{Version: Version, Length: uint16(len(msg)), ExportTime: exportTime,
		SequenceNumber: seq, ObservationDomainID: odid})
	records = b.records
	b.start, b.records = -1, 0
	return msg, records
}

// Moved tells that the caller moved the open message n bytes towards the
// start of the buffer (having sent what was before it).
func (b *MessageBuilder) Moved(n int) {
	if b.start >= 0 {
		b.start -= n
	}
	if b.setStart >= 0 {
		b.setStart -= n
	}
}
