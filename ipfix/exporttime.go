package ipfix

import (
	"encoding/binary"
	"time"
)

// ExportClock follows the export time of one transport session per
// observation domain, so that the messages a program makes up for that session
// (templates sent again on a new collector connection, a periodic template
// refresh, a session handed to another process) carry the exporter's clock and
// not the program's own.
//
// RFC 7011 §3.1 makes the export time the time the message leaves the
// exporter, and a collector orders a session's messages by it: IPFIXcol2
// refuses a TCP session whose export time goes back in a domain ("Setting
// Export Time in history is not allowed") and, over UDP, ignores the records of
// a message more than 15 s older than the newest one. The data after a made-up
// message keeps the exporter's export time; when the exporter's clock is behind
// ours (a replayed capture, a DPI whose clock lags), a made-up message stamped
// with our clock makes time go back for the data that follows it.
//
// The zero value is ready. Not safe for concurrent use.
type ExportClock struct {
	last map[uint32]uint32 // per domain but the last observed
	// The domain of the last message and its export time, kept out of the map:
	// a session nearly always carries one domain, and Observe runs per message.
	odid, time uint32
	has        bool
}

// Observe records the export time of msg, a message of the session (at least a
// header long).
func (c *ExportClock) Observe(msg []byte) {
	c.set(binary.BigEndian.Uint32(msg[12:16]), binary.BigEndian.Uint32(msg[4:8]))
}

func (c *ExportClock) set(odid, t uint32) {
	if c.has && c.odid != odid {
		if c.last == nil {
			c.last = make(map[uint32]uint32)
		}
		c.last[c.odid] = c.time
	}
	c.odid, c.time, c.has = odid, t, true
}

// Last returns the export time of the last message observed in domain odid.
func (c *ExportClock) Last(odid uint32) (uint32, bool) {
	if c.has && c.odid == odid {
		return c.time, true
	}
	t, ok := c.last[odid]
	return t, ok
}

// Stamp is the export time to put on a message made up for domain odid of the
// session: the export time of the last message observed in that domain, but
// never later than follow[odid], the export time of the first message of that
// domain that will follow it on the same connection (messages queued before
// the connection was made, which are older than the last one observed); the
// wall clock now only when the domain has neither. follow may be nil.
func (c *ExportClock) Stamp(odid uint32, now time.Time, follow map[uint32]uint32) uint32 {
	t, ok := c.Last(odid)
	if next, queued := follow[odid]; queued && (!ok || ExportTimeBefore(next, t)) {
		return next
	}
	if ok {
		return t
	}
	return uint32(now.Unix())
}

// ExportTimeBefore reports whether export time a is before b. Export times are
// seconds modulo 2^32 (they wrap in 2106), so they are compared in serial-number
// arithmetic, as IPFIXcol2 compares them.
func ExportTimeBefore(a, b uint32) bool { return int32(a-b) < 0 }

// FirstExportTimes adds to follow, for each domain of the messages in buf (back
// to back, as on a TCP connection), the export time of its first message in
// buf, unless follow has an earlier one: what Stamp needs to know of the data
// queued behind a made-up message. It stops at the first badly framed message.
func FirstExportTimes(follow map[uint32]uint32, buf []byte) {
	for len(buf) >= HeaderLen {
		n, err := FrameLength(buf)
		if err != nil || n == 0 {
			return
		}
		odid, t := binary.BigEndian.Uint32(buf[12:16]), binary.BigEndian.Uint32(buf[4:8])
		if have, ok := follow[odid]; !ok || ExportTimeBefore(t, have) {
			follow[odid] = t
		}
		buf = buf[n:]
	}
}
