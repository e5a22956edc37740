package ipfix

import (
	"encoding/binary"
	"sync"
)

var repackPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxMessageLen); return &b }}

// packer accumulates records into messages of at most maxSize bytes.
type packer struct {
	mb         MessageBuilder
	buf        *[]byte
	exportTime uint32
	seq        uint32
	odid       uint32
}

// add appends one record (or whole set body for unknown templates) of set id
// to the open message, closing it first if the record does not fit. A record
// too large for any message gets a message of its own.
func (p *packer) add(id uint16, rec []byte, records uint32, fn func(msg []byte)) {
	if !p.mb.Fits(id, len(rec)) {
		p.flush(fn)
	}
	p.mb.Append(id, rec, records)
}

// flush emits the open message. fn is a parameter, not a field, so that it
// does not escape (Repack allocates nothing).
func (p *packer) flush(fn func(msg []byte)) {
	msg, records := p.mb.Finish(p.exportTime, p.seq, p.odid)
	if msg == nil {
		return
	}
	p.seq += records
	fn(msg)
	*p.buf = (*p.buf)[:0]
}

// Repack splits a checked message into messages of at most maxSize bytes, for
// UDP subreceivers (RFC 7011 §10.3.3: a message must fit one datagram). Data
// sets are split at record boundaries using the templates in cache (which must
// have learned msg already, as Decoder.Decode or TemplateCache.Learn do) and
// their padding is dropped; template sets are split at template-record
// boundaries. The output messages keep the export time and domain; their
// sequence numbers are the original one plus the records of the outputs before
// them. A message already small enough is passed to fn unchanged.
//
// A data set of an unknown template cannot be split: it is kept whole if it
// fits (not counted in sequence numbers), else dropped and reported as
// ErrUnknownTemplate. A malformed set is dropped and reported. A single record
// larger than maxSize gets a message of its own, larger than maxSize. The first
// error is returned after everything else was emitted. msg passed to fn is
// valid only during fn. Repack allocates nothing in steady state.
func Repack(msg []byte, cache TemplateLookup, maxSize int, fn func(msg []byte)) error {
	if maxSize <= 0 || maxSize > MaxMessageLen {
		maxSize = MaxMessageLen
	}
	h, err := ParseHeader(msg)
	if err != nil {
		return err
	}
	if int(h.Length) < len(msg) {
		msg = msg[:h.Length]
	}
	if len(msg) <= maxSize {
		fn(msg)
		return nil
	}
	bp := repackPool.Get().(*[]byte)
	*bp = (*bp)[:0]
	p := packer{mb: NewMessageBuilder(bp, maxSize), buf: bp, exportTime: h.ExportTime, seq: h.SequenceNumber,
		odid: h.ObservationDomainID}
	var first error
	it := Sets(msg)
	for {
		s, ok := it.Next()
		if !ok {
			break
		}
		if serr := p.addSet(s, cache, fn); serr != nil && first == nil {
			first = serr
		}
	}
	p.flush(fn)
	repackPool.Put(bp)
	if err := it.Err(); err != nil {
		return err
	}
	return first
}

func (p *packer) addSet(s Set, cache TemplateLookup, fn func(msg []byte)) error {
	b := s.Body
	if s.ID == TemplateSetID || s.ID == OptionsTemplateSetID {
		for off := 0; len(b)-off >= 4; {
			n, err := templateRecordLength(b[off:], s.ID)
			if err != nil {
				return parseErr(s.Offset+SetHeaderLen+off, s.ID, binary.BigEndian.Uint16(b[off:]), ErrTemplate)
			}
			p.add(s.ID, b[off:off+n], 0, fn)
			off += n
		}
		return nil
	}
	t := cache.Lookup(p.odid, s.ID)
	if t == nil {
		if HeaderLen+SetHeaderLen+len(b) <= p.mb.MaxSize() {
			p.add(s.ID, b, 0, fn)
			return nil
		}
		return parseErr(s.Offset, s.ID, s.ID, ErrUnknownTemplate)
	}
	minLen := t.MinRecordLength()
	if minLen <= 0 {
		return parseErr(s.Offset, s.ID, s.ID, ErrTemplate)
	}
	for off := 0; len(b)-off >= minLen; {
		n, err := t.recordLength(b[off:])
		if err != nil {
			return parseErr(s.Offset+SetHeaderLen+off, s.ID, s.ID, ErrFieldLength)
		}
		p.add(s.ID, b[off:off+n], 1, fn)
		off += n
	}
	return nil
}
