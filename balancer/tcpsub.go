package balancer

import (
	"context"
	"encoding/binary"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

const (
	dialTimeout    = 5 * time.Second
	backoffInitial = 100 * time.Millisecond
	backoffMax     = 5 * time.Second
	// headerArena bounds the header copies of one batch; a batch that needs more is
	// written in several parts.
	headerArena = 16 * (forward.MaxIovecs / 2)
)

type subState uint8

const (
	// stateConnecting: the first connection after start is being made; what arrives
	// meanwhile is queued, so a new exporter session loses nothing.
	stateConnecting subState = iota
	stateUp
	// stateDown: the connection failed; RoundRobin routes around it, All queues for
	// it up to its high-water mark while it reconnects with backoff.
	stateDown
)

// tcpSub is a TCP subreceiver whose connection lives on the receiver's event loop,
// so forwarding is a writev of slices of the exporter's read buffer: no copy and
// no hand-off between threads. All fields are event-loop only unless noted.
type tcpSub struct {
	r     *Receiver
	addr  string
	label string
	hwm   int
	m     *forward.Metrics

	state          subState
	conn           gnet.Conn
	seq            forward.Sequencer
	iov            [][]byte
	hdrs           []byte
	w              forward.IOVWriter
	pending        []byte  // messages held while not connected, sequence numbers unset
	pendingRecords []int32 // data records of each pending message
	prime          []byte
	backoff        time.Duration
	stopped        bool
	// reprime is set when a message carrying templates was dropped at the
	// high-water mark: every current template is sent before the next message
	// taken (from the reprimed arena, valid until the batch is written), so the
	// collector can decode what follows.
	reprime  bool
	reprimed []byte
	follow   map[uint32]uint32

	// Sent counts what the kernel took: a message handed to gnet's outbound
	// buffer is in flight until the buffer has drained past its end, and lost
	// with the connection otherwise (gnet drops its buffer on close).
	batch    []inFlight // messages of the batch being built, ends relative to it
	batchLen int
	flight   []inFlight // handed over on this connection, not yet known taken
	head     int        // first entry of flight still in flight
	given    int64      // bytes handed to the kernel or to gnet on this connection
}

// inFlight is one message in the connection's byte stream.
type inFlight struct {
	end     int64 // offset just past the message
	records int32
	// counted: sent when taken; templates made up at connection are not
	// messages of the exporter and are not counted.
	counted bool
}

var _ output = (*tcpSub)(nil)

func newTCPSub(r *Receiver, addr string, hwm int, m *forward.Metrics) *tcpSub {
	return &tcpSub{
		r: r, addr: addr, label: addr, hwm: hwm, m: m,
		seq:     forward.NewSequencer(),
		iov:     make([][]byte, 0, forward.MaxIovecs),
		hdrs:    make([]byte, 0, headerArena),
		backoff: backoffInitial,
	}
}

func (s *tcpSub) name() string { return s.label }

// applyConfig takes a new high-water mark. Bytes above it already in gnet's
// buffer stay (they are written out); no message is added until below it.
func (s *tcpSub) applyConfig(rc config.Receiver) { s.hwm = rc.QueueBytes }

func (s *tcpSub) available() bool {
	switch s.state {
	case stateUp:
		// The current batch does not count: send writes it out before it would
		// cross the mark.
		return s.conn != nil && s.conn.OutboundBuffered() < s.hwm
	case stateConnecting:
		return len(s.pending) < s.hwm
	default:
		return false
	}
}

func (s *tcpSub) pendingBytes() int {
	n := len(s.pending)
	if s.conn != nil {
		n += s.conn.OutboundBuffered()
	}
	return n
}

func (s *tcpSub) send(msg []byte, odid uint32, records int) {
	if s.stopped {
		s.r.countDrop(s.m, forward.ReasonSubreceiverDown)
		return
	}
	if s.state != stateUp {
		if len(s.pending)+len(msg) > s.hwm {
			s.r.countDrop(s.m, forward.ReasonSubreceiverDown)
			return
		}
		s.pending = append(s.pending, msg...)
		if s.r.madeUp {
			records = notCounted
		}
		s.pendingRecords = append(s.pendingRecords, int32(records))
		return
	}
	if s.conn.OutboundBuffered()+s.batchLen+len(msg) > s.hwm && s.batchLen > 0 {
		// The batch is not queued yet: write it now, and count against the mark
		// only what the kernel does not take (a mark below one read's worth must
		// not drop while the subreceiver keeps up).
		s.flush()
		if s.state != stateUp {
			s.send(msg, odid, records)
			return
		}
	}
	if s.conn.OutboundBuffered()+len(msg) > s.hwm {
		s.r.countDrop(s.m, forward.ReasonQueueFull)
		if s.r.msgTemplates {
			s.reprime = true
		}
		return
	}
	if len(s.hdrs)+16 > cap(s.hdrs) || len(s.iov)+3 > cap(s.iov) {
		s.flush()
		if s.state != stateUp { // the write failed and closed the connection
			s.send(msg, odid, records)
			return
		}
	}
	if s.reprime {
		s.reprime = false
		s.appendReprime(msg, odid)
	}
	if s.r.headerFree || binary.BigEndian.Uint32(msg[8:12]) == s.seq.At(odid) {
		// Ours to number (see Receiver.headerFree), or numbered as we would:
		// send it as one slice.
		s.r.headerFree = false
		s.seq.Put(msg[:16], odid, records)
		s.iov = append(s.iov, msg)
	} else {
		n := len(s.hdrs)
		s.hdrs = append(s.hdrs, msg[:16]...)
		hdr := s.hdrs[n : n+16]
		s.seq.Put(hdr, odid, records)
		s.iov = append(s.iov, hdr, msg[16:])
	}
	s.batchLen += len(msg)
	s.batch = append(s.batch, inFlight{end: int64(s.batchLen), records: int32(records), counted: !s.r.madeUp})
}

// appendReprime queues every current template before msg, of domain odid, the
// message that follows them: their export time is not later than its own (see
// session.exportTime). Template messages we make up are not counted as sent.
func (s *tcpSub) appendReprime(msg []byte, odid uint32) {
	if s.follow == nil {
		s.follow = make(map[uint32]uint32, 1)
	}
	clear(s.follow)
	s.follow[odid] = binary.BigEndian.Uint32(msg[4:8])
	start := len(s.reprimed)
	s.reprimed = s.r.appendTemplates(s.reprimed, &s.seq, ipfix.MaxMessageLen, s.follow)
	if n := len(s.reprimed) - start; n > 0 {
		s.iov = append(s.iov, s.reprimed[start:])
		s.batchLen += n
		s.batch = append(s.batch, inFlight{end: int64(s.batchLen)})
	}
}

func (s *tcpSub) flush() {
	if len(s.iov) > 0 {
		s.write(s.iov, s.batch)
		clear(s.iov)
		s.iov = s.iov[:0]
		s.hdrs = s.hdrs[:0]
		s.reprimed = s.reprimed[:0]
		s.batch = s.batch[:0]
		s.batchLen = 0
	}
	s.settle()
	s.m.Queued.Store(int64(s.pendingBytes()))
}

// settle counts as sent the messages the kernel has taken since the last call.
func (s *tcpSub) settle() {
	if s.head == len(s.flight) || s.conn == nil {
		return
	}
	s.account(s.given - int64(s.conn.OutboundBuffered()))
}

// account counts the messages in flight that end at or before took as sent,
// and keeps the others in flight.
func (s *tcpSub) account(took int64) {
	m := s.m
	for ; s.head < len(s.flight) && s.flight[s.head].end <= took; s.head++ {
		f := s.flight[s.head]
		if f.counted {
			start := int64(0)
			if s.head > 0 {
				start = s.flight[s.head-1].end
			}
			m.BatchMessages++
			m.BatchBytes += int(f.end - start)
			m.BatchRecords += int(f.records)
		}
	}
	m.Publish()
	if s.head == len(s.flight) {
		s.flight, s.head = s.flight[:0], 0
	} else if s.head > 4096 && s.head > len(s.flight)/2 {
		// Keep the end of the previous message (the size of the next one).
		n := copy(s.flight, s.flight[s.head-1:])
		s.flight, s.head = s.flight[:n], 1
	}
}

// connLost ends the accounting of a connection that closed with held bytes
// still in gnet's buffer: what the kernel took was sent, the rest is lost.
func (s *tcpSub) connLost(held int) {
	s.account(s.given - int64(held))
	lost := 0
	for _, f := range s.flight[s.head:] {
		if f.counted {
			lost++
		}
	}
	if lost > 0 {
		s.m.Dropped[forward.ReasonConnectionLost].Add(lost)
	}
	s.flight, s.head, s.given = s.flight[:0], 0, 0
}

// write sends bufs, the messages of metas, on the connection: straight to the
// socket while gnet holds nothing for it, the unsent rest into gnet's outbound
// buffer (which copies it and arms the write event), preserving order.
func (s *tcpSub) write(bufs [][]byte, metas []inFlight) {
	c := s.conn
	if c == nil {
		return
	}
	if len(s.flight) == 0 {
		// The end of the message before the first in flight, for account.
		s.flight = append(s.flight, inFlight{end: s.given})
		s.head = 1
	}
	for _, f := range metas {
		f.end += s.given
		s.flight = append(s.flight, f)
	}
	if c.OutboundBuffered() > 0 {
		// gnet writes its buffer when the socket reports room, maybe after this
		// read: try now, so that once the subreceiver has caught up this batch
		// goes straight to the socket instead of being copied behind the rest.
		_ = c.Flush()
		if s.conn != c { // the write failed and closed the connection
			return
		}
	}
	if c.OutboundBuffered() == 0 {
		n, err := s.w.Write(c.Fd(), bufs)
		s.given += int64(n)
		if err != nil {
			// The rest never reaches the kernel: lost, and so is the stream
			// after it. Down now; OnClose reconnects.
			s.connLost(0)
			s.conn = nil
			s.state = stateDown
			s.m.Up.Store(0)
			_ = c.Close()
			return
		}
		bufs = forward.SkipBytes(bufs, n)
	}
	for len(bufs) > 0 {
		chunk := bufs
		if len(chunk) > forward.MaxIovecs {
			chunk = chunk[:forward.MaxIovecs]
		}
		// On an error gnet closes the connection at once (OnClose accounts).
		n, err := c.Writev(chunk)
		if err != nil {
			return
		}
		s.given += int64(n)
		bufs = bufs[len(chunk):]
	}
}

func (s *tcpSub) start() { go s.dial() }

// dial connects outside the loop (a connect may take seconds) and enrolls the
// connection on the loop, where opened runs.
func (s *tcpSub) dial() {
	ctx := s.r.ctx
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", s.addr)
	if err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(false)
		}
		_, err = s.r.loop.Enroll(gnet.NewContext(ctx, s), c)
		if err != nil {
			_ = c.Close()
		}
	}
	if err != nil && ctx.Err() == nil {
		s.r.onLoop(func() { s.dialFailed(err) })
	}
}

func (s *tcpSub) dialFailed(err error) {
	if s.stopped {
		return
	}
	if s.state == stateConnecting {
		s.state = stateDown
		s.r.log.Warn("subreceiver down", "subreceiver", s.addr, "err", err)
	}
	s.retry()
}

func (s *tcpSub) retry() {
	wait := s.backoff
	s.backoff = min(2*s.backoff, backoffMax)
	time.AfterFunc(wait, func() {
		if s.r.ctx.Err() == nil {
			s.dial()
		}
	})
}

// opened runs on the loop when the connection is established: templates first,
// then what was queued, so the collector can decode everything it gets.
func (s *tcpSub) opened(c gnet.Conn) {
	if s.stopped {
		_ = c.Close()
		return
	}
	wasDown := s.state == stateDown
	s.conn = c
	s.state = stateUp
	s.backoff = backoffInitial
	s.m.Up.Store(1)
	if wasDown {
		s.m.Reconnects.Inc()
	}
	s.r.log.Info("subreceiver up", "subreceiver", s.addr)

	// The queued messages are older than the sessions' last: the templates
	// must not be later than them (see session.exportTime).
	var follow map[uint32]uint32
	if len(s.pending) > 0 {
		follow = make(map[uint32]uint32)
		ipfix.FirstExportTimes(follow, s.pending)
	}
	s.prime = s.r.appendTemplates(s.prime[:0], &s.seq, ipfix.MaxMessageLen, follow)
	s.flight, s.head, s.given = s.flight[:0], 0, 0
	metas := s.batch[:0]
	if len(s.prime) > 0 {
		metas = append(metas, inFlight{end: int64(len(s.prime))})
	}
	off := 0
	for _, records := range s.pendingRecords {
		msg := s.pending[off:]
		n := int(binary.BigEndian.Uint16(msg[2:4]))
		counted := records != notCounted
		records = max(records, 0)
		s.seq.Put(msg[:16], binary.BigEndian.Uint32(msg[12:16]), int(records))
		off += n
		metas = append(metas, inFlight{end: int64(len(s.prime) + off), records: records, counted: counted})
	}
	queued := len(s.pendingRecords)
	s.write([][]byte{s.prime, s.pending}, metas)
	s.batch = metas[:0]
	s.pending = s.pending[:0]
	s.pendingRecords = s.pendingRecords[:0]
	s.settle()
	if queued > 0 {
		s.r.log.Info("subreceiver sent queued messages", "subreceiver", s.addr, "messages", queued)
	}
	s.m.Queued.Store(int64(s.pendingBytes()))
}

// closed runs on the loop from OnClose, while c still holds its outbound buffer.
func (s *tcpSub) closed(c gnet.Conn, err error) {
	if s.conn != c {
		// Already accounted and marked down (a write failed).
		if !s.stopped {
			s.r.log.Warn("subreceiver down", "subreceiver", s.addr, "err", err)
			s.retry()
		}
		return
	}
	s.connLost(c.OutboundBuffered())
	s.conn = nil
	s.state = stateDown
	s.m.Up.Store(0)
	s.m.Queued.Store(int64(s.pendingBytes()))
	if s.stopped {
		return
	}
	s.r.log.Warn("subreceiver down", "subreceiver", s.addr, "err", err)
	s.retry()
}

// stop closes the connection; the subreceiver is down from now on (RoundRobin
// skips it, a message sent to it is dropped and counted). What it still holds is
// dropped and counted.
func (s *tcpSub) stop() {
	s.stopped = true
	s.state = stateDown
	s.m.Up.Store(0)
	n := 0
	for _, r := range s.pendingRecords {
		if r != notCounted {
			n++
		}
	}
	if n > 0 {
		s.m.Dropped[forward.ReasonSubreceiverDown].Add(n)
	}
	s.pending, s.pendingRecords = s.pending[:0], s.pendingRecords[:0]
	if s.conn != nil {
		// gnet tries once more to write its buffer after OnClose; with the
		// sending side shut, what OnClose counts as lost stays lost.
		_ = unix.Shutdown(s.conn.Fd(), unix.SHUT_WR)
		_ = s.conn.Close()
	}
	s.m.Queued.Store(int64(s.pendingBytes()))
}

// onLoop runs fn on the receiver's event loop.
func (r *Receiver) onLoop(fn func()) {
	_ = r.loop.Execute(r.ctx, gnet.RunnableFunc(func(context.Context) error {
		fn()
		return nil
	}))
}
