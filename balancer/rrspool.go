package balancer

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/panjf2000/gnet/v2"

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
// ones once the replay caught up. A replayed message is acknowledged once the
// kernel took it (see flight): one lost with its connection is sent again.
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
	// flight is what the replay gave and the kernels have not taken yet, in
	// the spool's order: the spool is acknowledged up to its first message
	// not taken; one whose connection closed is sent again on its
	// subreceiver's next connection, before anything else replayed there.
	flight []rrFlight
	// waiting are the subreceivers with lost messages to send again.
	waiting map[*forward.TCPOnLoop]bool
}

// rrFlight is a message the replay gave.
type rrFlight struct {
	m    spool.Message
	out  *forward.TCPOnLoop // nil: nothing to send (the spool's templates)
	conn gnet.Conn          // nil: lost with its connection, to send again
	end  int64              // where it ends in conn's byte stream
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
	r.rrs = &rrSpool{p: p, cache: ipfix.NewTemplateCache(0), conns: make(map[*forward.TCPOnLoop]any), since: make(map[uint32]uint32),
		waiting: make(map[*forward.TCPOnLoop]bool)}
	return nil
}

// behind reports whether live messages go behind the spool: it replays, or
// it waits for its directory, where a hand-over predecessor left older
// messages. Event loop only.
func (rs *rrSpool) behind() bool {
	return rs != nil && (rs.p.Active() || rs.p.WaitsForPredecessor())
}

// rrRoute is RoundRobin's pick with the spool: -1 when the message must go to
// the spool (active and not caught up, waiting for a predecessor's messages,
// or nobody available). Event loop only.
func (r *Receiver) rrRoute(odid uint32, msg []byte) int {
	rs := r.rrs
	if rs == nil {
		return r.nextAvailable()
	}
	if rs.p.WaitsForPredecessor() {
		return -1
	}
	if !rs.p.Active() {
		return r.nextAvailable()
	}
	if rs.held != nil || len(rs.flight) > 0 || !rs.p.Spool().Drained() {
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
	rs.settle()
	r.resendLost()
	given, turn := false, 0
	budget := r.cfg.QueueBytes
	for budget > 0 && turn < forward.ReplayTurn {
		turn++
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
			rs.flight = append(rs.flight, rrFlight{m: *m})
			continue
		}
		pick := r.replayPick()
		if pick == nil {
			rs.held = m
			break
		}
		odid := binary.BigEndian.Uint32(m.Bytes[12:16])
		tmpl := hasTemplateSets(m.Bytes)
		f := r.replayTo(pick, *m, odid, tmpl, true)
		if f.out != nil && f.conn == nil {
			rs.waiting[pick] = true // not queued: sent again first
		}
		rs.flight = append(rs.flight, f)
		if tmpl {
			// Every subreceiver needs every template.
			t := r.templateOnly(m.Bytes)
			rs.msg = forward.Message{Bytes: t, ODID: odid, Templates: true, MadeUp: true}
			for _, o := range r.outputs {
				if t, ok := o.(*forward.TCPOnLoop); ok && t.Conn() == nil {
					// Down: the replay's templates go first on its next
					// connection (replayTo), before what it has to be
					// sent again, older than this message.
					continue
				}
				if o != pick {
					o.Send(&rs.msg)
				}
			}
		}
		rs.since[odid] = binary.BigEndian.Uint32(m.Bytes[4:8])
		budget -= len(m.Bytes)
		given = true
	}
	if given {
		// Before the kernels can take any of it: a crash from now on may
		// have delivered it. (A subreceiver writes its batch early when it
		// nears its mark, replayReady keeps the replay under half of it.)
		rs.p.Spool().Handed(rs.flight[len(rs.flight)-1].m)
		for _, o := range r.outputs {
			o.Flush()
		}
		rs.settle()
		if turn == forward.ReplayTurn {
			rs.p.Again()
		}
		return
	}
	if rs.held == nil && len(rs.flight) == 0 && rs.p.Spool().Drained() {
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
// high-water mark, with no lost message to send again first, or nil.
func (r *Receiver) replayPick() *forward.TCPOnLoop {
	n := len(r.outputs)
	for i := 1; i <= n; i++ {
		j := (r.rr + i) % n
		t, ok := r.outputs[j].(*forward.TCPOnLoop)
		if ok && r.replayReady(t) && !r.rrs.waiting[t] {
			r.rr = j
			return t
		}
	}
	return nil
}

// replayReady reports whether t may be given a replayed message now.
func (r *Receiver) replayReady(t *forward.TCPOnLoop) bool {
	return t.Conn() != nil && t.Available() && t.PendingBytes() < r.cfg.QueueBytes/2
}

// replayTo sends m, a replayed message of domain odid (tmpl: it carries
// templates, learned when learn), to t, after the replay's templates on the
// connections that lack them, and returns its place in t's stream.
func (r *Receiver) replayTo(t *forward.TCPOnLoop, m spool.Message, odid uint32, tmpl, learn bool) rrFlight {
	rs := r.rrs
	for _, o := range r.outputs {
		if u, ok := o.(*forward.TCPOnLoop); ok && u.Available() {
			if c := u.Conn(); c != nil && rs.conns[u] != any(c) {
				// The replay's templates before its data.
				rs.buf = rs.buf[:0]
				for _, d := range rs.cache.Domains() {
					rs.buf = rs.cache.AppendTemplateMessages(rs.buf, d, binary.BigEndian.Uint32(m.Bytes[4:8]), 0, ipfix.MaxMessageLen)
				}
				r.sendMadeUpTo(append([]byte(nil), rs.buf...), u)
				rs.conns[u] = c
			}
		}
	}
	if tmpl && learn {
		// After the templates above: a withdrawal must find its template
		// there.
		learnAll(rs.cache, m.Bytes)
	}
	sum, _ := ipfix.Summarize(rs.cache, odid, m.Bytes)
	rs.msg = forward.Message{Bytes: m.Bytes, ODID: odid, Records: sum.Records, Data: sum.DataSets > 0, Templates: tmpl}
	rs.msg.FreeHeader(true) // our copy
	c, before := t.Conn(), t.Queued()
	t.Send(&rs.msg)
	rs.msg = forward.Message{}
	f := rrFlight{m: m, out: t}
	switch {
	case t.Conn() == nil:
		// Held for the next connection (the write failed): sent with it.
		f.out = nil
	case t.Conn() == c && t.Queued() >= before+int64(len(m.Bytes)):
		f.conn, f.end = c, t.Queued()
	}
	// Otherwise not queued (dropped and counted): lost, sent again.
	return f
}

// settle marks the replayed messages whose connection closed as lost and
// acknowledges, oldest first, those the kernels took.
func (rs *rrSpool) settle() {
	for i := range rs.flight {
		f := &rs.flight[i]
		if f.out == nil || f.conn == nil {
			continue
		}
		if took, ok := f.out.TakenOn(f.conn); ok && took >= f.end {
			f.out = nil // taken
		} else if f.out.Conn() != f.conn {
			f.conn = nil // lost with its connection
		}
	}
	// A run of taken messages is kept as its last (Ack acknowledges what
	// came before it), without its bytes: flight stays as long as what the
	// kernels hold, even when one collector stalls while the others take the
	// replay.
	keep := rs.flight[:0]
	for _, f := range rs.flight {
		if f.out == nil {
			f.m.Bytes = nil
			if len(keep) > 0 && keep[len(keep)-1].out == nil {
				keep[len(keep)-1] = f
				continue
			}
		}
		keep = append(keep, f)
	}
	clear(rs.flight[len(keep):])
	rs.flight = keep
	if len(rs.flight) == 0 || rs.flight[0].out != nil {
		return
	}
	rs.p.Spool().Ack(rs.flight[0].m)
	rs.flight[0] = rrFlight{}
	rs.flight = rs.flight[:copy(rs.flight, rs.flight[1:])]
}

// resendLost sends the replayed messages lost with their connection (or not
// queued) again, in order, each on its subreceiver's next connection (a new
// session at the collector: export times may start over) before anything
// else replayed there; a subreceiver that is gone (a reload) leaves them to
// another.
func (r *Receiver) resendLost() {
	rs := r.rrs
	clear(rs.waiting)
	sent := false
	for i := range rs.flight {
		f := &rs.flight[i]
		if f.out == nil || f.conn != nil {
			continue
		}
		if !r.hasOutput(f.out) {
			t := r.replayPick()
			if t == nil {
				continue
			}
			f.out = t
		}
		if rs.waiting[f.out] || !r.replayReady(f.out) {
			rs.waiting[f.out] = true
			continue
		}
		odid := binary.BigEndian.Uint32(f.m.Bytes[12:16])
		// Its templates were learned when it was first given.
		g := r.replayTo(f.out, f.m, odid, hasTemplateSets(f.m.Bytes), false)
		f.out, f.conn, f.end = g.out, g.conn, g.end
		if f.out != nil && f.conn == nil {
			rs.waiting[f.out] = true
		}
		sent = true
	}
	if sent {
		for _, o := range r.outputs {
			o.Flush()
		}
	}
}

// hasOutput reports whether t is one of the receiver's outputs.
func (r *Receiver) hasOutput(t *forward.TCPOnLoop) bool {
	for _, o := range r.outputs {
		if o == output(t) {
			return true
		}
	}
	return false
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
	// Replayed messages to send again are older still.
	for _, f := range rs.flight {
		if f.out == nil || f.conn != nil || len(f.m.Bytes) < ipfix.HeaderLen {
			continue
		}
		d, t := binary.BigEndian.Uint32(f.m.Bytes[12:16]), binary.BigEndian.Uint32(f.m.Bytes[4:8])
		if e, ok := out[d]; !ok || int32(t-e) < 0 {
			out[d] = t
		}
	}
	return out
}
