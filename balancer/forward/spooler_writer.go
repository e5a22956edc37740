package forward

import (
	"encoding/binary"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/spool"
)

// The spool of a TCPWriter (the TCP subreceiver of a UDP receiver): spilled
// as TCPOnLoop's, replayed on the loop into the batches the writer goroutine
// sends. A replayed message is acknowledged once the kernel took it (the
// writer records it, the loop acknowledges: Spool.Ack is the loop's), so a
// stop with batches still queued leaves them to the next run's replay. The
// writer keeps queued batches across a reconnect (it loses only a message
// torn by the connection's end, counted connection_lost).

// SetSpooler gives the subreceiver its spool; Start starts it. Call before
// Start.
func (s *TCPWriter) SetSpooler(p *Spooler) { s.sp = p }

// spoolLive: see TCPOnLoop.spoolLive.
func (s *TCPWriter) spoolLive(m *Message) bool {
	if s.ctx.Err() != nil {
		return false
	}
	if s.sp.active && s.link.get() == StateUp && (s.cur == nil || len(s.cur.records) == 0) && s.sp.caughtUp() {
		s.reprime = true
		return false
	}
	s.sp.spill(m)
	return true
}

// written records that the replayed message m has been written; the loop
// acknowledges it (ackWritten). Messages are written in order, so the last one
// recorded covers those before it.
func (p *Spooler) written(m spool.Message) { p.wrote.Store(&m) }

// ackWritten acknowledges what was recorded as written. Event loop only;
// nil-safe.
func (p *Spooler) ackWritten() {
	if p == nil {
		return
	}
	if m := p.wrote.Swap(nil); m != nil {
		p.sp.Ack(*m)
	}
}

// clamp lowers follow, the export times the templates of a new connection
// must not pass, to those of the replay while the spool is in use (its
// messages are older than the live ones). Nil-safe.
func (p *Spooler) clamp(follow map[uint32]uint32) {
	if p == nil || !p.active {
		return
	}
	for d, t := range p.since {
		if f, ok := follow[d]; !ok || int32(t-f) < 0 {
			follow[d] = t
		}
	}
}

// pumpSpool replays what the spool gives into the batch while the writer
// holds less than half the high-water mark. Event loop only.
func (s *TCPWriter) pumpSpool() {
	p := s.sp
	if p == nil {
		return
	}
	p.ackWritten()
	if s.ctx.Err() != nil {
		return
	}
	if !p.active {
		if !p.sp.Loaded() || p.sp.Drained() {
			return
		}
		p.setActive(true)
		p.primed = true
		p.log.Info("subreceiver spool replay of messages left by a previous run", "spool", p.sp.Dir())
	}
	if s.link.get() != StateUp {
		return
	}
	s.mu.Lock()
	conn := s.conns
	s.mu.Unlock()
	room := s.hwm/2 - s.queued()
	given, turn := false, 0
	for room > 0 && turn < ReplayTurn {
		turn++
		m, ok := p.sp.Next()
		if !ok {
			break
		}
		if s.cur == nil {
			s.cur = s.batch()
		}
		et := binary.BigEndian.Uint32(m.Bytes[4:8])
		if conn != p.conn {
			// A new connection: the replay's templates first.
			p.conn = conn
			start := len(s.cur.buf)
			for _, d := range p.cache.Domains() {
				s.cur.buf = p.cache.AppendTemplateMessages(s.cur.buf, d, et, 0, ipfix.MaxMessageLen)
			}
			for off := start; off+ipfix.HeaderLen <= len(s.cur.buf); {
				off += int(binary.BigEndian.Uint16(s.cur.buf[off+2 : off+4]))
				s.cur.records = append(s.cur.records, notCounted)
			}
		}
		learnTemplates(p.cache, m.Bytes)
		s.cur.buf = append(s.cur.buf, m.Bytes...)
		if m.Templates {
			for off := 0; off+ipfix.HeaderLen <= len(m.Bytes); {
				off += int(binary.BigEndian.Uint16(m.Bytes[off+2 : off+4]))
				s.cur.records = append(s.cur.records, notCounted)
			}
		} else {
			odid := binary.BigEndian.Uint32(m.Bytes[12:16])
			records := 0
			if sum, err := ipfix.Summarize(p.cache, odid, m.Bytes); err == nil {
				records = sum.Records
			}
			s.cur.records = append(s.cur.records, int32(records))
			if p.since == nil {
				p.since = make(map[uint32]uint32, 1)
			}
			p.since[odid] = et
		}
		s.cur.replayed(m)
		room -= len(m.Bytes)
		p.last, given = m, true
	}
	if given {
		p.sp.Handed(p.last)
		s.Flush()
		if turn == ReplayTurn {
			p.again()
		}
		return
	}
	if p.caughtUp() {
		s.reprime = true
		clear(p.since)
	}
}
