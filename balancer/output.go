package balancer

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// output is one destination of a receiver's messages: a subreceiver, a re-export
// target or the dump writer. All methods run on the receiver's event loop.
type output interface {
	// available reports whether RoundRobin may pick this output now.
	available() bool
	// send queues msg for the current batch. msg is valid only until flush returns;
	// records is the number of data records it carries (for sequence numbers).
	send(msg []byte, odid uint32, records int)
	// flush ends the batch: one write per output per read from the exporter.
	flush()
	// start begins connecting (outputs that dial) once the loop runs.
	start()
	// pendingBytes is what waits to be written (queue and socket user-space buffer).
	pendingBytes() int
	// stop releases the output; called on the loop at shutdown.
	stop()
	name() string
}

// Drop reasons: a bounded set of label values (STYLE.md §7).
const (
	reasonQueueFull       = "queue_full"       // subreceiver above its high-water mark
	reasonSubreceiverDown = "subreceiver_down" // not connected and its queue is full
	reasonNoSubreceiver   = "no_subreceiver"   // RoundRobin found nobody available
	reasonMalformed       = "malformed"        // the message failed its set checks
	reasonSendError       = "send_error"       // the kernel refused a datagram
	// reasonTooManySources: a UDP receiver holds udpMaxSources exporters already.
	reasonTooManySources = "too_many_sources"
	// reasonConnectionLost: the subreceiver's connection closed with the message
	// not (wholly) handed to the kernel yet.
	reasonConnectionLost = "connection_lost"
)

// sequencer rewrites the sequence number of messages sent to one output so that
// each collector sees a gap-free sequence per observation domain (RFC 7011 §3.1:
// the count of data records sent before this message in the session).
type sequencer struct {
	next map[uint32]uint32
	// The domain of the last message and its counter, kept out of the map: a
	// DPI stream nearly always carries one domain, so the map is rarely touched.
	last     uint32
	lastNext uint32
	hasLast  bool
}

func newSequencer() sequencer { return sequencer{next: make(map[uint32]uint32, 4)} }

// put writes the sequence number for a message of records data records into hdr
// (a copy of the message header) and advances the domain's counter.
func (s *sequencer) put(hdr []byte, odid uint32, records int) {
	if !s.hasLast || s.last != odid {
		if s.hasLast {
			s.next[s.last] = s.lastNext
		}
		s.last, s.lastNext, s.hasLast = odid, s.next[odid], true
	}
	binary.BigEndian.PutUint32(hdr[8:12], s.lastNext)
	s.lastNext += uint32(records)
}

// at is the sequence number the next message of domain odid gets.
func (s *sequencer) at(odid uint32) uint32 {
	if s.hasLast && s.last == odid {
		return s.lastNext
	}
	return s.next[odid]
}

// outputMetrics are one output's counters. Event-loop code accumulates into the
// batch fields and publishes once per flush.
type outputMetrics struct {
	sentMessages *metrics.Counter
	sentBytes    *metrics.Counter
	sentRecords  *metrics.Counter
	dropped      map[string]*metrics.Counter
	reconnects   *metrics.Counter
	up           atomic.Int64
	queued       atomic.Int64

	batchMessages, batchBytes, batchRecords int
}

func newOutputMetrics(set *metrics.Set, labels string) *outputMetrics {
	m := &outputMetrics{
		sentMessages: set.NewCounter(`ipfix_balancer_sent_messages_total{` + labels + `}`),
		sentBytes:    set.NewCounter(`ipfix_balancer_sent_bytes_total{` + labels + `}`),
		sentRecords:  set.NewCounter(`ipfix_balancer_sent_records_total{` + labels + `}`),
		reconnects:   set.NewCounter(`ipfix_balancer_subreceiver_reconnects_total{` + labels + `}`),
		dropped:      make(map[string]*metrics.Counter),
	}
	for _, reason := range []string{reasonQueueFull, reasonSubreceiverDown, reasonSendError, reasonConnectionLost} {
		m.dropped[reason] = set.NewCounter(`ipfix_balancer_dropped_messages_total{` + labels + `,reason="` + reason + `"}`)
	}
	set.NewGauge(`ipfix_balancer_subreceiver_up{`+labels+`}`, func() float64 { return float64(m.up.Load()) })
	set.NewGauge(`ipfix_balancer_queue_bytes{`+labels+`}`, func() float64 { return float64(m.queued.Load()) })
	return m
}

func (m *outputMetrics) publish() {
	if m.batchMessages > 0 {
		m.sentMessages.Add(m.batchMessages)
		m.sentBytes.Add(m.batchBytes)
		m.sentRecords.Add(m.batchRecords)
	}
	m.batchMessages, m.batchBytes, m.batchRecords = 0, 0, 0
}
