package forward

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

const (
	// headerArena bounds the header copies of one batch; a batch that needs more is
	// written in several parts.
	headerArena = 16 * (MaxIovecs / 2)
)

// TCPOnLoop is the TCP subreceiver of a TCP receiver: its connection lives on the receiver's event loop,
// so forwarding is a writev of slices of the exporter's read buffer: no copy and
// no hand-off between threads. All fields are event-loop only unless noted.
type TCPOnLoop struct {
	host  LoopHost
	addr  string
	label string
	hwm   int
	m     *Metrics
	link  link

	conn           gnet.Conn
	seq            Sequencer
	iov            [][]byte
	hdrs           []byte
	w              IOVWriter
	pending        []byte  // messages held while not connected, sequence numbers unset
	pendingRecords []int32 // data records of each pending message
	prime          []byte
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

	sp *Spooler // nil: no spool (see spooler.go)
	// lostConn is the last connection lost, lostTaken what the kernel took
	// of it (TakenOn).
	lostConn  gnet.Conn
	lostTaken int64
}

// inFlight is one message in the connection's byte stream.
type inFlight struct {
	end     int64 // offset just past the message
	records int32
	// counted: sent when taken; templates made up at connection are not
	// messages of the exporter and are not counted.
	counted bool
}

var _ Output = (*TCPOnLoop)(nil)

// LoopHost is the receiver of a TCPOnLoop: a Host with a gnet event loop.
type LoopHost interface {
	Host
	// Context ends when the receiver stops.
	Context() context.Context
	// Enroll puts c on the receiver's event loop with sub as its gnet context:
	// the loop's OnOpen calls sub.Opened, its OnClose sub.Closed.
	Enroll(c net.Conn, sub *TCPOnLoop) error
}

// NewTCPOnLoop makes the subreceiver at addr of host, which queues at most hwm
// bytes; it dials once Start is called.
func NewTCPOnLoop(host LoopHost, addr string, hwm int, m *Metrics, log *slog.Logger) *TCPOnLoop {
	s := &TCPOnLoop{
		host: host, addr: addr, label: addr, hwm: hwm, m: m,
		seq:  NewSequencer(),
		iov:  make([][]byte, 0, MaxIovecs),
		hdrs: make([]byte, 0, headerArena),
	}
	s.link.init(addr, log, m)
	return s
}

func (s *TCPOnLoop) Name() string { return s.label }

// SetQueueBytes takes a new high-water mark (a reload). Bytes above it already
// in gnet's buffer stay (they are written out); no message is added until below it.
func (s *TCPOnLoop) SetQueueBytes(hwm int) { s.hwm = hwm }

// Conn is the current connection (nil while not connected). Event loop only.
func (s *TCPOnLoop) Conn() gnet.Conn { return s.conn }

// PrimedBytes is the size of the templates sent first on the current
// connection (made up, not counted as sent). Event loop only.
func (s *TCPOnLoop) PrimedBytes() int { return len(s.prime) }

func (s *TCPOnLoop) Available() bool {
	switch s.link.get() {
	case StateUp:
		// The current batch does not count: send writes it out before it would
		// cross the mark.
		return s.conn != nil && s.conn.OutboundBuffered() < s.hwm
	case StateConnecting:
		return len(s.pending) < s.hwm
	default:
		return false
	}
}

func (s *TCPOnLoop) PendingBytes() int {
	n := len(s.pending)
	if s.conn != nil {
		n += s.conn.OutboundBuffered()
	}
	return n
}

// Send queues m, or holds it while connecting, or drops it (counted) when the
// subreceiver is stopped, down or over its high-water mark.
//
// Not connected, a message goes to the spool also while the spool waits for
// its directory, if a predecessor (hand-over) left segments there: those are
// older than anything that comes here, and the replay sends them first, then
// this message; queued for the connection, it would reach the collector
// before them.
func (s *TCPOnLoop) Send(m *Message) {
	if s.sp != nil && (s.sp.active || s.link.get() != StateUp && (s.sp.loaded() || s.sp.WaitsForPredecessor())) && s.spoolLive(m) {
		return
	}
	msg, odid, records := m.Bytes, m.ODID, m.Records
	if s.stopped {
		s.drop(nil, ReasonSubreceiverDown)
		return
	}
	if s.link.get() != StateUp {
		if len(s.pending)+len(msg) > s.hwm {
			s.drop(m, ReasonSubreceiverDown)
			return
		}
		s.pending = append(s.pending, msg...)
		if m.MadeUp {
			records = notCounted
		}
		s.pendingRecords = append(s.pendingRecords, int32(records))
		return
	}
	if s.conn.OutboundBuffered()+s.batchLen+len(msg) > s.hwm && s.batchLen > 0 {
		// The batch is not queued yet: write it now, and count against the mark
		// only what the kernel does not take (a mark below one read's worth must
		// not drop while the subreceiver keeps up).
		s.Flush()
		if s.link.get() != StateUp {
			s.Send(m)
			return
		}
	}
	if s.conn.OutboundBuffered()+len(msg) > s.hwm {
		s.drop(m, ReasonQueueFull)
		if m.Templates {
			s.reprime = true
		}
		return
	}
	if len(s.hdrs)+16 > cap(s.hdrs) || len(s.iov)+3 > cap(s.iov) {
		s.Flush()
		if s.link.get() != StateUp { // the write failed and closed the connection
			s.Send(m)
			return
		}
	}
	if s.reprime {
		s.reprime = false
		s.appendReprime(msg, odid)
	}
	if m.TakeHeader() || binary.BigEndian.Uint32(msg[8:12]) == s.seq.At(odid) {
		// Ours to number (see Message.FreeHeader), or numbered as we would:
		// send it as one slice, one iovec with the messages before it in the
		// same read.
		s.seq.Put(msg[:16], odid, records)
		s.iov = AppendRun(s.iov, msg)
	} else {
		n := len(s.hdrs)
		s.hdrs = append(s.hdrs, msg[:16]...)
		hdr := s.hdrs[n : n+16]
		s.seq.Put(hdr, odid, records)
		s.iov = append(s.iov, hdr, msg[16:])
	}
	s.batchLen += len(msg)
	s.batch = append(s.batch, inFlight{end: int64(s.batchLen), records: int32(records), counted: !m.MadeUp})
}

// appendReprime queues every current template before msg, of domain odid, the
// message that follows them: their export time is not later than its own (see
// Host.AppendTemplates). Template messages we make up are not counted as sent.
func (s *TCPOnLoop) appendReprime(msg []byte, odid uint32) {
	if s.follow == nil {
		s.follow = make(map[uint32]uint32, 1)
	}
	clear(s.follow)
	s.follow[odid] = binary.BigEndian.Uint32(msg[4:8])
	start := len(s.reprimed)
	s.reprimed = s.host.AppendTemplates(s.reprimed, &s.seq, ipfix.MaxMessageLen, s.follow)
	if n := len(s.reprimed) - start; n > 0 {
		s.iov = append(s.iov, s.reprimed[start:])
		s.batchLen += n
		s.batch = append(s.batch, inFlight{end: int64(s.batchLen)})
	}
}

// Flush writes the batch: one writev, the rest into gnet's outbound buffer.
func (s *TCPOnLoop) Flush() {
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
	s.m.Queued.Store(int64(s.PendingBytes()))
}

// Settle counts as sent what the kernel took since the last call and
// publishes the queue size: for the receiver's ticker, when no read comes.
func (s *TCPOnLoop) Settle() {
	s.settle()
	s.m.Queued.Store(int64(s.PendingBytes()))
}

// drop counts one message the subreceiver could not take, or puts it into the
// spool (nil m: no spooling). The one place a live message is dropped for
// queue_full or subreceiver_down: the seam of the store-and-forward spool.
func (s *TCPOnLoop) drop(m *Message, reason string) {
	if s.sp != nil && m != nil && !s.stopped {
		s.sp.spill(m)
		return
	}
	s.m.Dropped[reason].Inc()
}

// settle counts as sent the messages the kernel has taken since the last call.
func (s *TCPOnLoop) settle() {
	if s.head == len(s.flight) || s.conn == nil {
		return
	}
	s.account(s.given - int64(s.conn.OutboundBuffered()))
}

// account counts the messages in flight that end at or before took as sent,
// and keeps the others in flight.
func (s *TCPOnLoop) account(took int64) {
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
	if s.sp != nil {
		s.sp.taken(took)
	}
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
func (s *TCPOnLoop) connLost(held int) {
	s.lostConn, s.lostTaken = s.conn, s.given-int64(held)
	s.account(s.given - int64(held))
	lost := 0
	for _, f := range s.flight[s.head:] {
		if f.counted {
			lost++
		}
	}
	if lost > 0 {
		s.m.Dropped[ReasonConnectionLost].Add(lost)
	}
	s.flight, s.head, s.given = s.flight[:0], 0, 0
	if s.sp != nil {
		s.sp.lost()
	}
}

// write sends bufs, the messages of metas, on the connection: straight to the
// socket while gnet holds nothing for it, the unsent rest into gnet's outbound
// buffer (which copies it and arms the write event), preserving order.
func (s *TCPOnLoop) write(bufs [][]byte, metas []inFlight) {
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
			s.link.quiet()
			_ = c.Close()
			return
		}
		bufs = SkipBytes(bufs, n)
	}
	for len(bufs) > 0 {
		chunk := bufs
		if len(chunk) > MaxIovecs {
			chunk = chunk[:MaxIovecs]
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

func (s *TCPOnLoop) Start() {
	if s.sp != nil {
		s.sp.start(s.pumpSpool)
	}
	go s.dial()
}

// dial connects outside the loop (a connect may take seconds) and enrolls the
// connection on the loop, where opened runs.
func (s *TCPOnLoop) dial() {
	ctx := s.host.Context()
	d := net.Dialer{Timeout: DialTimeout}
	c, err := d.DialContext(ctx, "tcp", s.addr)
	if err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(false)
		}
		err = s.host.Enroll(c, s)
		if err != nil {
			_ = c.Close()
		}
	}
	if err != nil && ctx.Err() == nil {
		s.host.OnLoop(func() { s.dialFailed(err) })
	}
}

func (s *TCPOnLoop) dialFailed(err error) {
	if s.stopped {
		return
	}
	if s.link.get() == StateConnecting {
		s.link.set(StateDown, err)
	}
	s.retry()
}

func (s *TCPOnLoop) retry() {
	time.AfterFunc(s.link.nextWait(), func() {
		if s.host.Context().Err() == nil {
			s.dial()
		}
	})
}

// Opened runs on the loop when the connection is established: templates first,
// then what was queued, so the collector can decode everything it gets.
func (s *TCPOnLoop) Opened(c gnet.Conn) {
	if s.stopped {
		_ = c.Close()
		return
	}
	s.conn = c
	s.link.connected()
	s.link.set(StateUp, nil)

	// The queued messages are older than the sessions' last: the templates
	// must not be later than them (see Host.AppendTemplates).
	var follow map[uint32]uint32
	if len(s.pending) > 0 {
		follow = make(map[uint32]uint32)
		ipfix.FirstExportTimes(follow, s.pending)
	}
	if s.sp != nil && s.sp.opened(len(s.pending) > 0) || len(s.pending) == 0 && s.host.ReplayBringsTemplates() {
		// Replay first: it brings its own templates (see Spooler).
		s.prime = s.prime[:0]
	} else {
		s.prime = s.host.AppendTemplates(s.prime[:0], &s.seq, ipfix.MaxMessageLen, follow)
	}
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
		s.link.log.Info("subreceiver sent queued messages", "subreceiver", s.addr, "messages", queued)
	}
	s.m.Queued.Store(int64(s.PendingBytes()))
	s.pumpSpool()
}

// Closed runs on the loop from OnClose, while c still holds its outbound buffer.
func (s *TCPOnLoop) Closed(c gnet.Conn, err error) {
	if s.conn != c {
		// Already accounted and marked down (a write failed).
		if !s.stopped {
			s.link.log.Warn("subreceiver down", "subreceiver", s.addr, "err", err)
			s.retry()
		}
		return
	}
	// gnet writes what it holds once more after OnClose, to a peer that may
	// still read (a collector that half-closed): shut our side, so what is
	// counted lost here (or sent again, replayed) stays unsent.
	_ = unix.Shutdown(c.Fd(), unix.SHUT_WR)
	s.connLost(c.OutboundBuffered())
	s.conn = nil
	s.m.Queued.Store(int64(s.PendingBytes()))
	if s.stopped {
		s.closeSpool()
		return
	}
	s.link.set(StateDown, err)
	s.retry()
}

// Stop closes the connection; the subreceiver is down from now on (RoundRobin
// skips it, a message sent to it is dropped and counted). What it still holds is
// dropped and counted.
func (s *TCPOnLoop) Stop() {
	s.stopped = true
	s.link.quiet()
	s.spoolPending()
	n := 0
	for _, r := range s.pendingRecords {
		if r != notCounted {
			n++
		}
	}
	if n > 0 {
		s.m.Dropped[ReasonSubreceiverDown].Add(n)
	}
	s.pending, s.pendingRecords = s.pending[:0], s.pendingRecords[:0]
	if s.conn != nil {
		// gnet tries once more to write its buffer after OnClose; with the
		// sending side shut, what OnClose counts as lost stays lost.
		_ = unix.Shutdown(s.conn.Fd(), unix.SHUT_WR)
		_ = s.conn.Close()
	} else {
		s.closeSpool()
	}
	s.m.Queued.Store(int64(s.PendingBytes()))
}

// Queued is where what is queued on the current connection ends in its byte
// stream: written, in gnet's buffer or in the batch. Event loop only.
func (s *TCPOnLoop) Queued() int64 { return s.given + int64(s.batchLen) }

// TakenOn is how much of connection c's byte stream the kernel took, for
// the current connection and the last one lost; ok is false for another.
// Event loop only.
func (s *TCPOnLoop) TakenOn(c gnet.Conn) (took int64, ok bool) {
	switch {
	case c == nil:
		return 0, false
	case c == s.conn:
		return s.given - int64(s.conn.OutboundBuffered()), true
	case c == s.lostConn:
		return s.lostTaken, true
	}
	return 0, false
}
