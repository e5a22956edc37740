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
	next       map[uint32]uint32 // expected sequence number per domain but the last
	last       uint32            // the last domain observed, and its expected number
	lastNext   uint32
	hasLast    bool
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
	want, ok := s.lookup(odid)
	if !ok {
		s.store(odid, seq+uint32(records))
		return 0, false
	}
	diff := int32(seq - want)
	switch {
	case diff == 0:
		s.store(odid, seq+uint32(records))
	case diff > 0:
		lost = uint64(diff)
		s.lost += lost
		s.store(odid, seq+uint32(records))
	case diff >= -resyncWindow:
		s.outOfOrder++
		return 0, true
	default:
		s.resets++
		s.store(odid, seq+uint32(records))
	}
	return lost, false
}

// lookup and store keep the last domain out of the map: an exporter session
// nearly always carries one domain, and Observe runs for every message.
func (s *SequenceTracker) lookup(odid uint32) (uint32, bool) {
	if s.hasLast && s.last == odid {
		return s.lastNext, true
	}
	want, ok := s.next[odid]
	return want, ok
}

func (s *SequenceTracker) store(odid, next uint32) {
	if s.hasLast && s.last != odid {
		if s.next == nil {
			s.next = make(map[uint32]uint32)
		}
		s.next[s.last] = s.lastNext
	}
	s.last, s.lastNext, s.hasLast = odid, next, true
}

// Lost returns the total records lost in gaps.
func (s *SequenceTracker) Lost() uint64 { return s.lost }

// OutOfOrder returns the number of messages that arrived older than expected.
func (s *SequenceTracker) OutOfOrder() uint64 { return s.outOfOrder }

// Resets returns how many times a domain's numbering jumped far back (an
// exporter restart) and tracking started over.
func (s *SequenceTracker) Resets() uint64 { return s.resets }

// Forget drops the state of domain odid.
func (s *SequenceTracker) Forget(odid uint32) {
	if s.hasLast && s.last == odid {
		s.hasLast = false
	}
	delete(s.next, odid)
}
