package balancer

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/spool"
)

// rrSpool is the spool of a RoundRobin receiver: a message no subreceiver can
// take goes to it instead of being dropped (no_subreceiver), and so does every
// message after it until the replay has caught up (and so do the messages for
// every output: template and options messages, the withdrawals of a session
// that ended). The replay runs on the loop and spreads the spooled messages
// over the TCP subreceivers that are up and below half their high-water mark;
// the templates of the replay go to every subreceiver first (and again to one that reconnects), the current
// ones once the replay caught up. A replayed message is acknowledged once its
// subreceiver has it queued (written or in gnet's buffer): a connection lost
// then loses it, counted as connection_lost, as live messages.
type rrSpool struct {
	p     *forward.Spooler
	cache *ipfix.TemplateCache // templates of the replay
	held  *spool.Message       // taken from the spool, no subreceiver free yet
	// conns are the connections that have the replay's templates.
	conns map[*forward.TCPOnLoop]any
	// since is, per domain, the export time of the last replayed message (or
	// the first spooled one): templates made up for a subreceiver while
	// replaying are stamped no later (Host.AppendTemplates).
	since map[uint32]uint32
	buf   []byte
	msg   forward.Message
}

// newRRSpool opens the receiver's spool, in RoundRobin mode with a spool dir.
func (r *Receiver) newRRSpool() error {
	if r.cfg.Mode != config.RoundRobin || r.cfg.Spool.Dir == "" || r.cfg.Proto != config.TCP {
		return nil
	}
	sp, err := r.newSpool("", r.labels)
	if err != nil {
		return fmt.Errorf("receiver %s: spool: %w", r.name, err)
	}
	p := forward.NewSpooler(sp, (*host)(r), r.log)
	r.spMu.Lock()
	r.spoolers = append(r.spoolers, p)
	r.spMu.Unlock()
	r.rrs = &rrSpool{p: p, cache: ipfix.NewTemplateCache(0), conns: make(map[*forward.TCPOnLoop]any), since: make(map[uint32]uint32)}
	return nil
}

// rrRoute is RoundRobin's pick with the spool: -1 when the message must go to
// the spool (active and not caught up, or nobody available). Event loop only.
func (r *Receiver) rrRoute(odid uint32, msg []byte) int {
	rs := r.rrs
	if rs == nil || !rs.p.Active() {
		return r.nextAvailable()
	}
	if rs.held != nil || !rs.p.Spool().Drained() {
		return -1
	}
	pick := r.nextAvailable()
	if pick < 0 {
		return -1
	}
	// Caught up: every subreceiver gets the current templates, then live.
	rs.p.SetActive(false)
	clear(rs.since)
	r.log.Info("spool replay caught up")
	follow := map[uint32]uint32{odid: binary.BigEndian.Uint32(msg[4:8])}
	scratch := forward.NewSequencer()
	start := len(r.extract)
	r.extract = (*host)(r).AppendTemplates(r.extract, &scratch, ipfix.MaxMessageLen, follow)
	r.sendMadeUpTo(r.extract[start:], nil)
	return pick
}

// rrSpill puts a message into the receiver's spool.
func (r *Receiver) rrSpill(m *forward.Message) {
	rs := r.rrs
	if !rs.p.Active() {
		clear(rs.since)
		// The subreceivers have the current templates (live until now): so
		// does the replay.
		scratch := forward.NewSequencer()
		rs.buf = (*host)(r).AppendTemplates(rs.buf[:0], &scratch, ipfix.MaxMessageLen, nil)
		learnAll(rs.cache, rs.buf)
	}
	if _, ok := rs.since[m.ODID]; !ok {
		rs.since[m.ODID] = binary.BigEndian.Uint32(m.Bytes[4:8])
	}
	rs.p.Spill(m)
}

// sendMadeUpTo sends template messages, back to back in b, to every output
// (only: when not nil).
func (r *Receiver) sendMadeUpTo(b []byte, only output) {
	for len(b) >= ipfix.HeaderLen {
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < ipfix.HeaderLen || n > len(b) {
			return
		}
		r.msg = forward.Message{Bytes: b[:n], ODID: binary.BigEndian.Uint32(b[12:16]), Templates: true, MadeUp: true}
		for _, o := range r.outputs {
			if only == nil || o == only {
				o.Send(&r.msg)
			}
		}
		b = b[n:]
	}
	r.msg = forward.Message{}
}

// pumpRR replays the receiver's spool over the subreceivers. Event loop only.
func (r *Receiver) pumpRR() {
	rs := r.rrs
	if rs == nil || r.sessionsClosed || r.ctx.Err() != nil {
		return // stopping: see TCPOnLoop.pumpSpool
	}
	if !rs.p.Active() {
		// Messages a previous run left.
		if !rs.p.Spool().Loaded() || rs.p.Spool().Drained() {
			return
		}
		rs.p.SetActive(true)
		r.log.Info("spool replay of messages left by a previous run")
	}
	var last *spool.Message
	budget := r.cfg.QueueBytes
	for budget > 0 {
		m := rs.held
		rs.held = nil
		if m == nil {
			n, ok := rs.p.Spool().Next()
			if !ok {
				break
			}
			m = &n
		}
		if m.Templates {
			learnAll(rs.cache, m.Bytes)
			clear(rs.conns) // every subreceiver needs them
			last = m
			continue
		}
		pick := r.replayPick()
		if pick == nil {
			rs.held = m
			break
		}
		odid := binary.BigEndian.Uint32(m.Bytes[12:16])
		tmpl := hasTemplateSets(m.Bytes)
		for _, o := range r.outputs {
			if t, ok := o.(*forward.TCPOnLoop); ok && t.Available() {
				if c := t.Conn(); c != nil && rs.conns[t] != any(c) {
					// The replay's templates before its data.
					rs.buf = rs.buf[:0]
					for _, d := range rs.cache.Domains() {
						rs.buf = rs.cache.AppendTemplateMessages(rs.buf, d, binary.BigEndian.Uint32(m.Bytes[4:8]), 0, ipfix.MaxMessageLen)
					}
					r.sendMadeUpTo(append([]byte(nil), rs.buf...), t)
					rs.conns[t] = c
				}
			}
		}
		if tmpl {
			// After the prime above: a withdrawal must find its template
			// there.
			learnAll(rs.cache, m.Bytes)
		}
		sum, _ := ipfix.Summarize(rs.cache, odid, m.Bytes)
		rs.msg = forward.Message{Bytes: m.Bytes, ODID: odid, Records: sum.Records, Data: sum.DataSets > 0, Templates: tmpl}
		rs.msg.FreeHeader(true) // our copy
		pick.Send(&rs.msg)
		if tmpl {
			// Every subreceiver needs every template.
			t := r.templateOnly(m.Bytes)
			rs.msg = forward.Message{Bytes: t, ODID: odid, Templates: true, MadeUp: true}
			for _, o := range r.outputs {
				if o != pick {
					o.Send(&rs.msg)
				}
			}
		}
		rs.since[odid] = binary.BigEndian.Uint32(m.Bytes[4:8])
		budget -= len(m.Bytes)
		last = m
	}
	if last != nil {
		for _, o := range r.outputs {
			o.Flush()
		}
		rs.p.Spool().Ack(*last)
		return
	}
	if rs.held == nil && rs.p.Spool().Drained() {
		// Caught up while no live message came: live again, after the
		// current templates.
		rs.p.SetActive(false)
		clear(rs.since)
		r.log.Info("spool replay caught up")
		scratch := forward.NewSequencer()
		start := len(r.extract)
		r.extract = (*host)(r).AppendTemplates(r.extract, &scratch, ipfix.MaxMessageLen, nil)
		r.sendMadeUpTo(r.extract[start:], nil)
		for _, o := range r.outputs {
			o.Flush()
		}
		r.extract = r.extract[:start]
	}
}

// replayPick is the next TCP subreceiver that is up and below half its
// high-water mark, or nil.
func (r *Receiver) replayPick() output {
	n := len(r.outputs)
	for i := 1; i <= n; i++ {
		j := (r.rr + i) % n
		t, ok := r.outputs[j].(*forward.TCPOnLoop)
		if ok && t.Conn() != nil && t.Available() && t.PendingBytes() < r.cfg.QueueBytes/2 {
			r.rr = j
			return t
		}
	}
	return nil
}

// templateOnly copies the header and template sets of msg (a fresh slice).
func (r *Receiver) templateOnly(msg []byte) []byte {
	out := append([]byte(nil), msg[:ipfix.HeaderLen]...)
	it := ipfix.Sets(msg)
	for set, ok := it.Next(); ok; set, ok = it.Next() {
		if set.ID == ipfix.TemplateSetID || set.ID == ipfix.OptionsTemplateSetID {
			out = append(out, msg[set.Offset:set.Offset+ipfix.SetHeaderLen+len(set.Body)]...)
		}
	}
	binary.BigEndian.PutUint16(out[2:4], uint16(len(out)))
	return out
}

// learnAll learns the template sets of the messages in b, back to back.
func learnAll(c *ipfix.TemplateCache, b []byte) {
	for len(b) >= ipfix.HeaderLen {
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < ipfix.HeaderLen || n > len(b) {
			return
		}
		_, _ = c.Learn(b[:n], time.Time{})
		b = b[n:]
	}
}

// rrFollow clamps follow, for templates made up while the RoundRobin spool
// replays, to the export times of the replay (see rrSpool.since).
func (r *Receiver) rrFollow(follow map[uint32]uint32) map[uint32]uint32 {
	rs := r.rrs
	if rs == nil || !rs.p.Active() || len(rs.since) == 0 {
		return follow
	}
	out := make(map[uint32]uint32, len(rs.since)+len(follow))
	for d, t := range follow {
		out[d] = t
	}
	for d, t := range rs.since {
		if f, ok := out[d]; !ok || int32(t-f) < 0 {
			out[d] = t
		}
	}
	return out
}
