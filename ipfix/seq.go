package ipfix

// resyncWindow is how far (in records) a sequence number may fall behind the
// expected one and still count as reordering; further back means the exporter
// restarted its numbering, and tracking starts over.
const resyncWindow = 1 << 20

// SequenceTracker checks the sequence numbers of the messages of one session
// (RFC 7011 §3.1), per observation domain. The sequence number of a message is
// the count of data records sent before it, modulo 2^32, so differences are
// taken in serial-number arithmetic and wrap at 2^32. The zero value is ready;
// not safe for concurrent use.
type SequenceTracker struct {
	next       map[uint32]uint32 // expected sequence number per domain
	lost       uint64
	outOfOrder uint64
	resets     uint64
}

// Observe records a message of domain odid with sequence number seq carrying
// records data records. It returns the records lost in a gap before it, and
// whether the message was out of order (older than expected; its records were
// counted lost when the gap was seen). A message far behind (more than 2^20
// records) is taken as an exporter restart: tracking restarts from it.
func (s *SequenceTracker) Observe(odid, seq uint32, records int) (lost uint64, outOfOrder bool) {
	if s.next == nil {
		s.next = make(map[uint32]uint32)
	}
	want, ok := s.next[odid]
	if !ok {
		s.next[odid] = seq + uint32(records)
		return 0, false
	}
	diff := int32(seq - want)
	switch {
	case diff == 0:
		s.next[odid] = seq + uint32(records)
	case diff > 0:
		lost = uint64(diff)
		s.lost += lost
		s.next[odid] = seq + uint32(records)
	case diff >= -resyncWindow:
		s.outOfOrder++
		return 0, true
	default:
		s.resets++
		s.next[odid] = seq + uint32(records)
	}
	return lost, false
}

// Lost returns the total records lost in gaps.
func (s *SequenceTracker) Lost() uint64 { return s.lost }

// OutOfOrder returns the number of messages that arrived older than expected.
func (s *SequenceTracker) OutOfOrder() uint64 { return s.outOfOrder }

// Resets returns how many times a domain's numbering jumped far back (an
// exporter restart) and tracking started over.
func (s *SequenceTracker) Resets() uint64 { return s.resets }

// Forget drops the state of domain odid.
func (s *SequenceTracker) Forget(odid uint32) { delete(s.next, odid) }
