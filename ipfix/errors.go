package ipfix

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error returned by this package for malformed input is a
// *ParseError wrapping one of these; branch on them with errors.Is.
var (
	// ErrShortMessage means the header (or a file) promises more bytes than the
	// datagram or file holds. For a UDP datagram drop it; for a file the tail is
	// torn (the writer was interrupted).
	ErrShortMessage = errors.New("short message")

	// ErrVersion means the version field is not 10. On a TCP stream the message
	// boundary is lost: close the connection.
	ErrVersion = errors.New("bad version")

	// ErrMessageLength means the header length is below 16 (RFC 7011 §3.1), or
	// disagrees with the bytes given to CheckMessage. On a TCP stream the message
	// boundary is lost: close the connection.
	ErrMessageLength = errors.New("bad message length")

	// ErrSetLength means a set length is below 4 or runs past the end of the
	// message, or bytes too short for a set header trail the last set
	// (RFC 7011 §3.3.2). Drop the message.
	ErrSetLength = errors.New("bad set length")

	// ErrSetID means a set carries a reserved set id (0, 1, 4..255, RFC 7011
	// §3.3.2). It wraps ErrSetLength: errors.Is(err, ErrSetLength) also holds,
	// and callers treat it the same way: drop the message.
	ErrSetID = &wrappedError{msg: "reserved set id", err: ErrSetLength}

	// ErrTemplate means a template or options template record is malformed:
	// truncated, a template id below 256, a scope field count of zero or above
	// the field count, or a template whose records would be empty. The rest of
	// that template set is skipped; other sets are still used.
	ErrTemplate = errors.New("bad template")

	// ErrUnknownTemplate means a data set refers to a template this session has
	// not defined (or whose lifetime expired). Drop the set and keep going: the
	// exporter will (re)send the template.
	ErrUnknownTemplate = errors.New("unknown template")

	// ErrFieldLength means a data record overruns its set, typically a
	// variable-length field (RFC 7011 §7) longer than what is left. The rest of
	// that set is dropped; other sets are still used.
	ErrFieldLength = errors.New("field overruns set")

	// ErrUnknownWithdrawal means a template withdrawal (RFC 7011 §8.1) names a
	// template id that is not defined. Harmless: count it and keep going.
	ErrUnknownWithdrawal = errors.New("withdrawal of unknown template")

	// ErrTooManyTemplates means a template was not learned because the
	// session's cache holds its limit (TemplateCache.SetLimit). Data sets of
	// that template stay unknown; the stream is in sync: count it and go on.
	ErrTooManyTemplates = errors.New("too many templates")
)

// wrappedError is a sentinel that is also another sentinel.
type wrappedError struct {
	msg string
	err error
}

func (e *wrappedError) Error() string { return e.msg }
func (e *wrappedError) Unwrap() error { return e.err }

// ParseError reports malformed IPFIX input: where it is and which sentinel it is.
// Offset is the byte offset within the message (for FileReader and
// SplitDatagram, within the file or datagram) of what is wrong: the header (0),
// a set header (set errors, unknown template), a template record, or the data
// record that overruns its set. SetID and TemplateID are zero when they do not
// apply; for data sets both hold the set id.
type ParseError struct {
	Offset     int
	SetID      uint16
	TemplateID uint16
	Err        error
}

// Error returns "ipfix: offset 40 set 256: unknown template", leaving out the set
// when unknown and the template when it is unknown or equals the set id (a data set).
func (e *ParseError) Error() string {
	b := make([]byte, 0, 64)
	b = append(b, "ipfix: offset "...)
	b = strconv.AppendInt(b, int64(e.Offset), 10)
	if e.SetID != 0 {
		b = append(b, " set "...)
		b = strconv.AppendUint(b, uint64(e.SetID), 10)
	}
	if e.TemplateID != 0 && e.TemplateID != e.SetID {
		b = append(b, " template "...)
		b = strconv.AppendUint(b, uint64(e.TemplateID), 10)
	}
	b = append(b, ": "...)
	if e.Err != nil {
		b = append(b, e.Err.Error()...)
	} else {
		b = append(b, "unknown error"...)
	}
	return string(b)
}

// Unwrap returns the sentinel.
func (e *ParseError) Unwrap() error { return e.Err }

func parseErr(off int, setID, templateID uint16, err error) *ParseError {
	return &ParseError{Offset: off, SetID: setID, TemplateID: templateID, Err: err}
}
