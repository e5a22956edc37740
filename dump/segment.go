package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// SpoolRoot is the default directory of every spool under a receiver's
// spool dir; each spool has its own directory below it (SpoolDir).
//
// A spool directory holds segments and a position:
//
//	<seq>_<opened>_<prime>.ipfix   a segment: an IPFIX File (RFC 5655)
//	position                       the replay position (fsynced, atomic rename)
//	position.ack                   the last acknowledged position (not fsynced)
//
// <seq> is the segment number (20 digits, so names sort by it), <opened> the
// UTC open time (OpenedLayout) and <prime> the length in bytes of the template
// messages that open the segment (the templates in force when it was opened,
// so the segment decodes alone); the spooled messages follow, byte for byte.
const (
	// PositionFile is the replay position of a spool.
	PositionFile = "position"
	// AckFile is the last acknowledged position, written without fsync: it
	// survives a kill -9 (page cache), not a power loss.
	AckFile = "position.ack"
)

// Segment is the name of one spool segment.
type Segment struct {
	Seq    uint64
	Opened time.Time // UTC, to the microsecond
	Prime  int64     // bytes of template messages opening the segment
}

// String returns the file name: <seq>_<opened>_<prime>.ipfix.
func (s Segment) String() string {
	return fmt.Sprintf("%020d_%s_%d%s", s.Seq, s.Opened.UTC().Format(OpenedLayout), s.Prime, Ext)
}

var segmentRE = regexp.MustCompile(`^(\d{20})_(\d{8}T\d{6}\.\d{6}Z)_(\d{1,10})` + regexp.QuoteMeta(Ext) + `$`)

// SegmentGrammar describes segment names, for error messages.
const SegmentGrammar = "<20-digit seq>_<YYYYMMDDTHHMMSS.ffffffZ>_<prime bytes>.ipfix"

// ParseSegment parses the base name of a spool segment.
func ParseSegment(base string) (Segment, error) {
	m := segmentRE.FindStringSubmatch(base)
	if m == nil {
		return Segment{}, fmt.Errorf("spool segment %q: name is not %s", base, SegmentGrammar)
	}
	seq, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return Segment{}, fmt.Errorf("spool segment %q: seq: %w", base, err)
	}
	opened, err := time.Parse(OpenedLayout, m[2])
	if err != nil {
		return Segment{}, fmt.Errorf("spool segment %q: open time: %w", base, err)
	}
	prime, _ := strconv.ParseInt(m[3], 10, 64)
	return Segment{Seq: seq, Opened: opened, Prime: prime}, nil
}

// SpoolName is the directory name of a spool: the stream and DPI of its
// receiver, and, for a spool per subreceiver (All), the subreceiver's address
// with ':' and '/' made '_' ("fullflow_0_10.0.0.2_9920"). An empty subreceiver
// names the spool of a whole receiver (RoundRobin): "fullflow_0".
func SpoolName(stream string, dpi int, subreceiver string) string {
	n := stream + "_" + strconv.Itoa(dpi)
	if subreceiver == "" {
		return n
	}
	r := strings.NewReplacer(":", "_", "/", "_", "[", "", "]", "", "%", "_")
	return n + "_" + r.Replace(subreceiver)
}

// SpoolDir is the directory of one spool under the spool root.
func SpoolDir(root, stream string, dpi int, subreceiver string) string {
	return filepath.Join(root, SpoolName(stream, dpi, subreceiver))
}

// Scan reports what an IPFIX File holds: the number of complete messages from
// offset from on (messages before it are read but not counted), and the
// length up to the end of the last complete message. A torn tail (a message
// cut short by a crash) ends the scan without error (torn reports it); a lost
// framing (bad version or length) is an error naming the file and offset.
func Scan(path string, from int64) (msgs, good int64, torn bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()
	fr := ipfix.NewFileReader(f)
	for {
		msg, err := fr.Next()
		if err == io.EOF {
			return msgs, good, false, nil
		}
		var pe *ipfix.ParseError
		if errors.As(err, &pe) {
			// Short (torn), lost framing or bad sets: the file is good up
			// to the last message that read and checked cleanly.
			return msgs, good, true, nil
		}
		if err != nil {
			return msgs, good, false, fmt.Errorf("%s: %w", path, err)
		}
		off := fr.Offset()
		good = off + int64(len(msg))
		if off >= from {
			msgs++
		}
	}
}

// CutTail cuts the file at path to its last complete message (a torn tail
// after a crash) and reports the messages it keeps from offset from on and
// whether it cut anything.
func CutTail(path string, from int64) (msgs int64, cut bool, err error) {
	msgs, good, torn, err := Scan(path, from)
	if err != nil {
		return 0, false, err
	}
	if !torn {
		return msgs, false, nil
	}
	if err := os.Truncate(path, good); err != nil {
		return 0, false, err
	}
	return msgs, true, nil
}
