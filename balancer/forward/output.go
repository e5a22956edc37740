package forward

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// Drop reasons: a bounded set of label values (STYLE.md §7).
const (
	ReasonQueueFull       = "queue_full"       // subreceiver above its high-water mark
	ReasonSubreceiverDown = "subreceiver_down" // not connected and its queue is full
	ReasonNoSubreceiver   = "no_subreceiver"   // RoundRobin found nobody available
	ReasonMalformed       = "malformed"        // the message failed its set checks
	ReasonSendError       = "send_error"       // the kernel refused a datagram
	// ReasonTooManySources: a UDP receiver holds as many exporters as it may.
	ReasonTooManySources = "too_many_sources"
	// ReasonConnectionLost: the subreceiver's connection closed with the message
	// not (wholly) handed to the kernel yet.
	ReasonConnectionLost = "connection_lost"
)

// Sequencer rewrites the sequence number of messages sent to one output so that
// each collector sees a gap-free sequence per observation domain (RFC 7011 §3.1:
// the count of data records sent before this message in the session).
type Sequencer struct {
	next map[uint32]uint32
	// The domain of the last message and its counter, kept out of the map: a
	// DPI stream nearly always carries one domain, so the map is rarely touched.
	last     uint32
	lastNext uint32
	hasLast  bool
}

// NewSequencer returns a Sequencer whose domains all start at 0.
func NewSequencer() Sequencer { return Sequencer{next: make(map[uint32]uint32, 4)} }

// Put writes the sequence number for a message of records data records into hdr
// (a copy of the message header) and advances the domain's counter.
func (s *Sequencer) Put(hdr []byte, odid uint32, records int) {
	if !s.hasLast || s.last != odid {
		if s.hasLast {
			s.next[s.last] = s.lastNext
		}
		s.last, s.lastNext, s.hasLast = odid, s.next[odid], true
	}
	binary.BigEndian.PutUint32(hdr[8:12], s.lastNext)
	s.lastNext += uint32(records)
}

// At is the sequence number the next message of domain odid gets.
func (s *Sequencer) At(odid uint32) uint32 {
	if s.hasLast && s.last == odid {
		return s.lastNext
	}
	return s.next[odid]
}

// Metrics are one output's counters. Event-loop code accumulates into the
// batch fields and publishes once per flush.
type Metrics struct {
	SentMessages *metrics.Counter
	SentBytes    *metrics.Counter
	SentRecords  *metrics.Counter
	Dropped      map[string]*metrics.Counter
	Reconnects   *metrics.Counter
	Up           atomic.Int64
	Queued       atomic.Int64

	BatchMessages, BatchBytes, BatchRecords int
}

func NewMetrics(set *metrics.Set, labels string) *Metrics {
	m := &Metrics{
		SentMessages: set.NewCounter(`ipfix_balancer_sent_messages_total{` + labels + `}`),
		SentBytes:    set.NewCounter(`ipfix_balancer_sent_bytes_total{` + labels + `}`),
		SentRecords:  set.NewCounter(`ipfix_balancer_sent_records_total{` + labels + `}`),
		Reconnects:   set.NewCounter(`ipfix_balancer_subreceiver_reconnects_total{` + labels + `}`),
		Dropped:      make(map[string]*metrics.Counter),
	}
	for _, reason := range []string{ReasonQueueFull, ReasonSubreceiverDown, ReasonSendError, ReasonConnectionLost} {
		m.Dropped[reason] = set.NewCounter(`ipfix_balancer_dropped_messages_total{` + labels + `,reason="` + reason + `"}`)
	}
	set.NewGauge(`ipfix_balancer_subreceiver_up{`+labels+`}`, func() float64 { return float64(m.Up.Load()) })
	set.NewGauge(`ipfix_balancer_queue_bytes{`+labels+`}`, func() float64 { return float64(m.Queued.Load()) })
	return m
}

func (m *Metrics) Publish() {
	if m.BatchMessages > 0 {
		m.SentMessages.Add(m.BatchMessages)
		m.SentBytes.Add(m.BatchBytes)
		m.SentRecords.Add(m.BatchRecords)
	}
	m.BatchMessages, m.BatchBytes, m.BatchRecords = 0, 0, 0
}
