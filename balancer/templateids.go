package balancer

import (
	"encoding/binary"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Downstream template ids.
//
// RFC 7011 §8 scopes templates to a transport session and observation domain,
// and each exporter session has its own template cache here; but a receiver
// forwards all its sessions into one connection per subreceiver and records
// them into one dump. So each (session, domain, template id) gets an id
// downstream that is unique in its domain among the receiver's sessions: the
// session's own id when no other session holds it (one exporter: nothing is
// rewritten), a free one otherwise. dispatch rewrites the set ids of a message
// once, in place, before any output sees it, so every output shares the same
// bytes (forwarding stays zero-copy); the template messages the balancer makes
// up are rewritten the same way; a session that ends withdraws its ids
// downstream (RFC 7011 §8.1), after which another session may take them.

// templateIDsLogEvery is the least time between two log lines about a domain
// without a free template id.
const templateIDsLogEvery = time.Minute

// downID is the id downstream of one of a session's templates.
type downID struct {
	id      uint16
	options bool
	owned   bool // false when no id was free: the session's own id, shared
}

func tidKey(odid uint32, id uint16) uint64 { return uint64(odid)<<16 | uint64(id) }

// withdrawal is a template withdrawal of a message being dispatched, applied to
// the ids once the message went out with the ids still mapped.
type withdrawal struct {
	s     *session
	odid  uint32
	id    uint16
	setID uint16
}

// templateIDs is a receiver's table of downstream ids. Event loop only.
type templateIDs struct {
	owners  map[uint32]map[uint16]*session // by domain: downstream id → its session
	pending []withdrawal
	next    map[uint32]uint16 // by domain: where the search for a free id starts
	lastLog time.Time
}

// assignIDs gives a downstream id to each template msg defines (a template
// already mapped keeps its id) and notes its withdrawals for releaseWithdrawn.
func (r *Receiver) assignIDs(s *session, msg []byte, odid uint32) {
	walkTemplateRecords(msg, func(setID uint16, rec []byte) {
		id := binary.BigEndian.Uint16(rec)
		if binary.BigEndian.Uint16(rec[2:4]) == 0 {
			r.tids.pending = append(r.tids.pending, withdrawal{s: s, odid: odid, id: id, setID: setID})
			return
		}
		if id >= ipfix.MinDataSetID {
			r.mapID(s, odid, id, setID == ipfix.OptionsTemplateSetID)
		}
	})
}

// mapID returns the downstream id of template id of domain odid of s, giving
// it one if it has none.
func (r *Receiver) mapID(s *session, odid uint32, id uint16, options bool) uint16 {
	k := tidKey(odid, id)
	if d, ok := s.down[k]; ok {
		if d.options != options {
			d.options = options
			s.down[k] = d
		}
		return d.id
	}
	if r.tids.owners == nil {
		r.tids.owners = make(map[uint32]map[uint16]*session)
		r.tids.next = make(map[uint32]uint16)
	}
	owners := r.tids.owners[odid]
	if owners == nil {
		owners = make(map[uint16]*session)
		r.tids.owners[odid] = owners
	}
	if s.down == nil {
		s.down = make(map[uint64]downID)
	}
	d := id
	if owners[id] != nil {
		// Held by another session, or by another template of s that was given
		// it: the highest free id (exporters number theirs from 256 up).
		d = 0
		// From below the last id given in the domain, wrapping once: giving
		// a session's many templates ids costs one pass, not one each.
		c := r.tids.next[odid]
		for range 0x10000 - int(ipfix.MinDataSetID) {
			if c < ipfix.MinDataSetID {
				c = 0xffff
			}
			if owners[c] == nil {
				d = c
				break
			}
			c--
		}
		if d != 0 {
			r.tids.next[odid] = d - 1
		}
		if d == 0 {
			r.m.templateIDsExhausted.Inc()
			if now := r.opts.Now(); r.tids.lastLog.IsZero() || now.Sub(r.tids.lastLog) >= templateIDsLogEvery {
				r.tids.lastLog = now
				r.log.Warn("no free template id downstream, sharing the exporter's", "exporter", s.remote,
					"observation_domain", odid, "template_id", id)
			}
			s.down[k] = downID{id: id, options: options}
			return id
		}
	}
	owners[d] = s
	s.down[k] = downID{id: d, options: options, owned: true}
	if d != id {
		if s.up == nil {
			s.up = make(map[uint64]uint16)
		}
		s.up[tidKey(odid, d)] = id
		s.remapped++
	}
	return d
}

// freeID releases the downstream id of template id of domain odid of s.
func (r *Receiver) freeID(s *session, odid uint32, id uint16) {
	k := tidKey(odid, id)
	d, ok := s.down[k]
	if !ok {
		return
	}
	delete(s.down, k)
	if d.id != id {
		delete(s.up, tidKey(odid, d.id))
		s.remapped--
	}
	if owners := r.tids.owners[odid]; d.owned && owners[d.id] == s {
		delete(owners, d.id)
		if len(owners) == 0 {
			delete(r.tids.owners, odid)
		}
	}
}

// releaseWithdrawn applies the withdrawals of the message just dispatched.
// A withdraw-all also removed the other sessions' templates of that kind from
// the collectors' sessions (ids are shared downstream): those go out again.
func (r *Receiver) releaseWithdrawn() {
	for _, w := range r.tids.pending {
		if w.id != w.setID {
			r.freeID(w.s, w.odid, w.id)
			continue
		}
		options := w.setID == ipfix.OptionsTemplateSetID
		for k, d := range w.s.down {
			if uint32(k>>16) == w.odid && d.options == options {
				r.freeID(w.s, w.odid, uint16(k))
			}
		}
		r.resendDomain(w.s, w.odid)
	}
	clear(r.tids.pending)
	r.tids.pending = r.tids.pending[:0]
}

// resendDomain sends the templates of domain odid of every session but s to
// every output.
func (r *Receiver) resendDomain(s *session, odid uint32) {
	now := r.opts.Now()
	for o := range r.sessions {
		if o == s {
			continue
		}
		start := len(r.extract)
		r.extract = o.templates.AppendTemplateMessages(r.extract, odid, o.exportTime(odid, now, nil), 0, ipfix.MaxMessageLen)
		o.rewriteMessages(r.extract[start:])
		r.sendMadeUp(o, r.extract[start:], false)
	}
}

// sendMadeUp sends template messages the balancer made up for session s to
// every output (but UDP subreceivers when they are withdrawals: RFC 7011 §8.4
// has none over UDP). They are not counted as sent.
//
// While a RoundRobin receiver's spool replays, they go to the spool, behind
// the replayed data they concern (a withdrawal sent now would make it
// undecodable, and its export time would go back after it).
func (r *Receiver) sendMadeUp(s *session, msgs []byte, withdrawals bool) {
	cur, msg := r.cur, r.msg
	r.cur = s
	spool := r.rrs.behind()
	for len(msgs) >= ipfix.HeaderLen {
		n := int(binary.BigEndian.Uint16(msgs[2:4]))
		r.msg = forward.Message{Bytes: msgs[:n], ODID: binary.BigEndian.Uint32(msgs[12:16]), Templates: true, MadeUp: true}
		if spool {
			r.rrSpill(&r.msg)
			msgs = msgs[n:]
			continue
		}
		for _, o := range r.outputs {
			if _, udp := o.(*forward.UDP); udp && withdrawals {
				continue
			}
			o.Send(&r.msg)
		}
		msgs = msgs[n:]
	}
	r.cur, r.msg = cur, msg
}

// endSession withdraws the downstream ids of a session that ended (its
// connection closed, or a UDP exporter expired) from the outputs, and frees
// them. A stopping receiver only frees them: its outputs close.
func (r *Receiver) endSession(s *session) {
	if len(s.down) == 0 {
		return
	}
	if r.ctx != nil && r.ctx.Err() == nil && !r.sessionsClosed {
		now := r.opts.Now()
		byDomain := make(map[uint32][2][]uint16) // template ids, options template ids
		for k, d := range s.down {
			if !d.owned {
				continue
			}
			odid := uint32(k >> 16)
			ids := byDomain[odid]
			if d.options {
				ids[1] = append(ids[1], d.id)
			} else {
				ids[0] = append(ids[0], d.id)
			}
			byDomain[odid] = ids
		}
		start := len(r.extract)
		for odid, ids := range byDomain {
			r.extract = appendWithdrawals(r.extract, odid, s.exportTime(odid, now, nil), ids)
		}
		if len(r.extract) > start {
			r.sendMadeUp(s, r.extract[start:], true)
			r.flush()
		}
	}
	for k := range s.down {
		r.freeID(s, uint32(k>>16), uint16(k))
	}
}

// appendWithdrawals appends messages of domain odid withdrawing templates
// ids[0] and options templates ids[1] (RFC 7011 §8.1: a record with the id and
// a field count of 0), each message at most ipfix.MaxMessageLen.
func appendWithdrawals(dst []byte, odid, exportTime uint32, ids [2][]uint16) []byte {
	const perMessage = (ipfix.MaxMessageLen - ipfix.HeaderLen - 2*ipfix.SetHeaderLen) / 4
	for len(ids[0])+len(ids[1]) > 0 {
		start := len(dst)
		dst = append(dst, make([]byte, ipfix.HeaderLen)...)
		room := perMessage
		for i, setID := range []uint16{ipfix.TemplateSetID, ipfix.OptionsTemplateSetID} {
			n := min(len(ids[i]), room)
			if n == 0 {
				continue
			}
			dst = binary.BigEndian.AppendUint16(dst, setID)
			dst = binary.BigEndian.AppendUint16(dst, uint16(ipfix.SetHeaderLen+4*n))
			for _, id := range ids[i][:n] {
				dst = binary.BigEndian.AppendUint16(dst, id)
				dst = append(dst, 0, 0)
			}
			ids[i] = ids[i][n:]
			room -= n
		}
		ipfix.PutHeader(dst[start:], ipfix.Header{Version: ipfix.Version, Length: uint16(len(dst) - start),
			ExportTime: exportTime, ObservationDomainID: odid})
	}
	return dst
}

// upID is the session's own id of the template with downstream id d.
func (s *session) upID(odid uint32, d uint16) uint16 {
	if s.remapped == 0 {
		return d
	}
	if u, ok := s.up[tidKey(odid, d)]; ok {
		return u
	}
	return d
}

// rewrite puts the downstream ids in msg, a checked message of domain odid of
// s, in place: data set ids and template record ids (definitions and
// withdrawals). Nothing to do, and nothing read, while s has its own ids.
func (s *session) rewrite(msg []byte, odid uint32) {
	if s.remapped == 0 {
		return
	}
	for off := ipfix.HeaderLen; off+ipfix.SetHeaderLen <= len(msg); {
		id := binary.BigEndian.Uint16(msg[off:])
		n := int(binary.BigEndian.Uint16(msg[off+2:]))
		if n < ipfix.SetHeaderLen || n > len(msg)-off {
			return
		}
		switch {
		case id >= ipfix.MinDataSetID:
			if d, ok := s.down[tidKey(odid, id)]; ok && d.id != id {
				binary.BigEndian.PutUint16(msg[off:], d.id)
			}
		case id == ipfix.TemplateSetID || id == ipfix.OptionsTemplateSetID:
			for b := msg[off+ipfix.SetHeaderLen : off+n]; len(b) >= 4; {
				k := templateRecordLen(b, id)
				if k == 0 {
					break
				}
				if tid := binary.BigEndian.Uint16(b); tid >= ipfix.MinDataSetID {
					if d, ok := s.down[tidKey(odid, tid)]; ok && d.id != tid {
						binary.BigEndian.PutUint16(b, d.id)
					}
				}
				b = b[k:]
			}
		}
		off += n
	}
}

// rewriteMessages rewrites messages made up from s's templates, back to back.
func (s *session) rewriteMessages(msgs []byte) {
	if s.remapped == 0 {
		return
	}
	for len(msgs) >= ipfix.HeaderLen {
		n := int(binary.BigEndian.Uint16(msgs[2:4]))
		if n < ipfix.HeaderLen || n > len(msgs) {
			panic("BUG: template messages badly framed")
		}
		s.rewrite(msgs[:n], binary.BigEndian.Uint32(msgs[12:16]))
		msgs = msgs[n:]
	}
}

// walkTemplateRecords calls fn for each template record of msg (a checked
// message) with its set's id.
func walkTemplateRecords(msg []byte, fn func(setID uint16, rec []byte)) {
	for off := ipfix.HeaderLen; off+ipfix.SetHeaderLen <= len(msg); {
		id := binary.BigEndian.Uint16(msg[off:])
		n := int(binary.BigEndian.Uint16(msg[off+2:]))
		if n < ipfix.SetHeaderLen || n > len(msg)-off {
			return
		}
		if id == ipfix.TemplateSetID || id == ipfix.OptionsTemplateSetID {
			for b := msg[off+ipfix.SetHeaderLen : off+n]; len(b) >= 4; {
				k := templateRecordLen(b, id)
				if k == 0 {
					break
				}
				fn(id, b[:k])
				b = b[k:]
			}
		}
		off += n
	}
}

// templateRecordLen is the length of the template record at the start of b in
// a set with id setID, 0 when it is truncated (RFC 7011 §3.4.1, §3.4.2: a
// withdrawal is 4 bytes, a field with the enterprise bit 8).
func templateRecordLen(b []byte, setID uint16) int {
	if len(b) < 4 {
		return 0
	}
	count := int(binary.BigEndian.Uint16(b[2:4]))
	off := 4
	if count == 0 {
		return off
	}
	if setID == ipfix.OptionsTemplateSetID {
		off += 2
	}
	for range count {
		if off+4 > len(b) {
			return 0
		}
		if b[off]&0x80 != 0 {
			off += 8
		} else {
			off += 4
		}
	}
	if off > len(b) {
		return 0
	}
	return off
}

// A session is the forward.Session of its messages: a UDP subreceiver re-packs
// them (their ids are downstream) and primes its collector with the session's
// templates.
var _ forward.Session = (*session)(nil)

// Lookup is the template of domain odid whose downstream id is d (for
// ipfix.Repack over rewritten messages).
func (s *session) Lookup(odid uint32, d uint16) *ipfix.Template {
	return s.templates.Lookup(odid, s.upID(odid, d))
}

// AppendTemplateMessages appends messages holding every current template of
// domain odid, with their downstream ids, stamped with the session's export
// time at now, numbered seq, each at most maxSize bytes.
func (s *session) AppendTemplateMessages(dst []byte, odid, seq uint32, maxSize int, now time.Time) []byte {
	start := len(dst)
	dst = s.templates.AppendTemplateMessages(dst, odid, s.exportTime(odid, now, nil), seq, maxSize)
	s.rewriteMessages(dst[start:])
	return dst
}
