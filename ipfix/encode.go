package ipfix

// Encoder builds the messages of one observation domain: template sets for the
// templates added, then data sets of the records appended, closing a message
// whenever the next record would make it exceed maxSize (records are never split).
// Sequence numbers count data records (RFC 7011 §3.1). Not safe for concurrent use.
type Encoder struct {
	odid       uint32
	exportTime uint32
	seq        uint32
	templates  map[uint16]*Template
	out        func(msg []byte)

	buf []byte         // the open message; len 0 when none
	mb  MessageBuilder // frames into buf
}

// NewEncoder returns an encoder for domain odid whose messages are at most
// maxSize bytes (0 or above 65535 means 65535). Export time and the first
// sequence number are 0 until set.
func NewEncoder(odid uint32, maxSize int) *Encoder {
	if maxSize <= 0 || maxSize > MaxMessageLen {
		maxSize = MaxMessageLen
	}
	e := &Encoder{
		odid:      odid,
		templates: make(map[uint16]*Template),
		buf:       make([]byte, 0, maxSize),
	}
	e.mb = NewMessageBuilder(&e.buf, maxSize)
	return e
}

// SetExportTime sets the export time (Unix seconds) of the messages closed from
// now on.
func (e *Encoder) SetExportTime(t uint32) { e.exportTime = t }

// SetSequenceNumber sets the sequence number of the next message opened.
func (e *Encoder) SetSequenceNumber(seq uint32) { e.seq = seq }

// SequenceNumber returns the number of data records emitted or pending so far
// (plus the initial sequence number): the next message's sequence number after
// a Flush.
func (e *Encoder) SequenceNumber() uint32 { return e.seq + e.mb.Records() }

// SetOutput sets the function that receives each closed message. msg is valid
// only during fn. Without an output, messages are discarded.
func (e *Encoder) SetOutput(fn func(msg []byte)) { e.out = fn }

// AddTemplate registers t (replacing a template with the same id) and writes
// its template record into the open message, before any record appended later.
func (e *Encoder) AddTemplate(t *Template) {
	e.templates[t.ID] = t
	sid := t.setID()
	if !e.mb.Fits(sid, len(t.Record)) {
		e.Flush()
	}
	e.mb.Append(sid, t.Record, 0)
}

// AppendRecord adds one encoded data record for template templateID. When the
// message would exceed maxSize it is closed and emitted first. Errors are
// *ParseError: ErrUnknownTemplate (template not added), ErrFieldLength (record
// does not match the template) or ErrMessageLength (record too large for
// maxSize).
func (e *Encoder) AppendRecord(templateID uint16, record []byte) error {
	t := e.templates[templateID]
	if t == nil {
		return parseErr(0, templateID, templateID, ErrUnknownTemplate)
	}
	if n, err := t.recordLength(record); err != nil || n != len(record) {
		return parseErr(0, templateID, templateID, ErrFieldLength)
	}
	if HeaderLen+SetHeaderLen+len(record) > e.mb.MaxSize() {
		return parseErr(0, templateID, templateID, ErrMessageLength)
	}
	if !e.mb.Fits(templateID, len(record)) {
		e.Flush()
	}
	e.mb.Append(templateID, record, 1)
	return nil
}

// Flush closes the open message, if any, and emits it.
func (e *Encoder) Flush() {
	msg, records := e.mb.Finish(e.exportTime, e.seq, e.odid)
	if msg == nil {
		return
	}
	e.seq += records
	if e.out != nil {
		e.out(msg)
	}
	e.buf = e.buf[:0]
}

// AppendVarLen appends data as a variable-length field (RFC 7011 §7): a one-byte
// length below 255, else 255 and a two-byte length. data longer than 65535
// bytes is truncated.
func AppendVarLen(dst, data []byte) []byte {
	if len(data) > 0xffff {
		data = data[:0xffff]
	}
	if len(data) < 255 {
		dst = append(dst, byte(len(data)))
	} else {
		dst = append(dst, 255, byte(len(data)>>8), byte(len(data)))
	}
	return append(dst, data...)
}

// AppendUint appends the low size bytes (1..8) of v in network byte order
// (reduced-size encoding, RFC 7011 §6.2).
func AppendUint(dst []byte, v uint64, size int) []byte {
	for i := size - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*uint(i))))
	}
	return dst
}
