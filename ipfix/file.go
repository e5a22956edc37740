package ipfix

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// FileWriter writes an IPFIX File (RFC 5655 §6, §8): a plain sequence of
// messages. So that every file decodes alone (§8.1: templates must precede the
// data that uses them within the file), the current templates of a domain are
// written from the cache before the first message of that domain carrying data
// records. Messages are otherwise written byte for byte. FileWriter does not
// buffer: give it a bufio.Writer and flush it. Not safe for concurrent use.
type FileWriter struct {
	w       io.Writer
	cache   *TemplateCache
	primed  map[uint32]bool
	scratch []byte
	msgs    int64
	bytes   int64
}

// NewFileWriter returns a writer to w taking templates from cache (which must
// have learned each message before it is written). cache may be nil when the
// messages carry their own templates.
func NewFileWriter(w io.Writer, cache *TemplateCache) *FileWriter {
	return &FileWriter{w: w, cache: cache, primed: make(map[uint32]bool)}
}

// WriteMessage writes one message, preceded by its domain's templates when it
// is the domain's first data message in the file. msg must pass CheckMessage
// (it is checked; a bad message is not written).
func (fw *FileWriter) WriteMessage(msg []byte) error {
	if err := CheckMessage(msg); err != nil {
		return err
	}
	return fw.WriteChecked(msg, hasDataSet(msg))
}

// WriteChecked is WriteMessage for a message the caller has already checked
// (CheckMessage or an equivalent walk of its sets) and whose sets it knows:
// hasData tells whether it carries a data set. It saves walking the sets again.
func (fw *FileWriter) WriteChecked(msg []byte, hasData bool) error {
	odid := binary.BigEndian.Uint32(msg[12:16])
	if !fw.primed[odid] && hasData {
		fw.primed[odid] = true
		if fw.cache != nil {
			fw.scratch = fw.cache.AppendTemplateMessages(fw.scratch[:0], odid,
				binary.BigEndian.Uint32(msg[4:8]), binary.BigEndian.Uint32(msg[8:12]), MaxMessageLen)
			for b := fw.scratch; len(b) > 0; {
				n := int(binary.BigEndian.Uint16(b[2:4]))
				if err := fw.write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
		}
	}
	return fw.write(msg)
}

func (fw *FileWriter) write(msg []byte) error {
	n, err := fw.w.Write(msg)
	fw.bytes += int64(n)
	if err != nil {
		return err
	}
	fw.msgs++
	return nil
}

// Messages returns the number of messages written, template messages included.
func (fw *FileWriter) Messages() int64 { return fw.msgs }

// Bytes returns the number of bytes written.
func (fw *FileWriter) Bytes() int64 { return fw.bytes }

func hasDataSet(msg []byte) bool {
	it := Sets(msg)
	for {
		s, ok := it.Next()
		if !ok {
			return false
		}
		if s.ID >= MinDataSetID {
			return true
		}
	}
}

// FileReader reads the messages of an IPFIX File (RFC 5655) through its own
// buffer. Not safe for concurrent use.
type FileReader struct {
	r    *bufio.Reader
	buf  []byte
	off  int64 // file offset of the next message
	last int64 // file offset of the message last returned
	err  error // sticky framing error
}

// NewFileReader returns a reader of the messages in r.
func NewFileReader(r io.Reader) *FileReader {
	return &FileReader{r: bufio.NewReaderSize(r, 256<<10), buf: make([]byte, MaxMessageLen), last: -1}
}

// Next returns the next message, valid until the next call. At a clean end of
// file it returns io.EOF. Malformed input gives a *ParseError whose Offset is
// the file offset: ErrShortMessage for a torn tail, ErrVersion or
// ErrMessageLength when framing is lost (these end the file: every later call
// returns the same error), and set errors from CheckMessage (the message is
// skipped; the next call goes on with the following one). Read errors of the
// underlying reader are returned as they are.
func (fr *FileReader) Next() ([]byte, error) {
	if fr.err != nil {
		return nil, fr.err
	}
	start := fr.off
	n, err := io.ReadFull(fr.r, fr.buf[:HeaderLen])
	fr.off += int64(n)
	if err != nil {
		if n == 0 && err == io.EOF {
			fr.err = io.EOF
			return nil, io.EOF
		}
		return nil, fr.fail(start, err)
	}
	h, herr := ParseHeader(fr.buf[:HeaderLen])
	if herr != nil {
		var pe *ParseError
		errors.As(herr, &pe)
		fr.err = &ParseError{Offset: int(start), Err: pe.Err}
		return nil, fr.err
	}
	n, err = io.ReadFull(fr.r, fr.buf[HeaderLen:h.Length])
	fr.off += int64(n)
	if err != nil {
		return nil, fr.fail(start, err)
	}
	fr.last = start
	msg := fr.buf[:h.Length]
	if cerr := CheckMessage(msg); cerr != nil {
		shiftOffset(cerr, int(start))
		return nil, cerr
	}
	return msg, nil
}

// fail turns a read error at the message starting at start into the sticky error.
func (fr *FileReader) fail(start int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		fr.err = &ParseError{Offset: int(start), Err: ErrShortMessage}
	} else {
		fr.err = err
	}
	return fr.err
}

// Offset returns the file offset of the message last returned (-1 before the
// first).
func (fr *FileReader) Offset() int64 { return fr.last }
