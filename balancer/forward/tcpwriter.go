package forward

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/spool"
)

const (
	// streamBatchBytes is the least capacity of a new batch buffer.
	streamBatchBytes = 64 << 10
	// streamStopWait bounds how long stop waits for the writer goroutine.
	streamStopWait = 2 * time.Second
)

// streamBatch is the messages one flush hands to the writer: their bytes back to
// back and, per message, its data records (for sequence numbers).
type streamBatch struct {
	buf     []byte
	records []int32
	// numberedFor is the connection for which the loop wrote the sequence
	// numbers (it tried to write b itself; 0: it did not); done is how much of
	// buf it wrote (the messages it completed are counted). The writer sends the
	// rest, numbered afresh if the connection is another one by then.
	numberedFor uint64
	done        int
	// replay[i], when set, is the replayed spool message that message i of
	// the batch ends: the spool is acknowledged up to it once it is written.
	replay []spool.Message
}

func (b *streamBatch) reset() {
	b.buf, b.records, b.numberedFor, b.done = b.buf[:0], b.records[:0], 0, 0
	clear(b.replay)
	b.replay = b.replay[:0]
}

// replayed marks the message last added to b as the end of m, a replayed
// spool message.
func (b *streamBatch) replayed(m spool.Message) {
	for len(b.replay) < len(b.records)-1 {
		b.replay = append(b.replay, spool.Message{})
	}
	b.replay = append(b.replay, m)
}

// lastReplayed is the last replayed spool message that ends within the
// first to bytes of b.
func (b *streamBatch) lastReplayed(to int) (spool.Message, bool) {
	var last spool.Message
	ok := false
	off := 0
	for i := 0; i < len(b.replay) && off < to; i++ {
		off += int(binary.BigEndian.Uint16(b.buf[off+2 : off+4]))
		if off <= to && b.replay[i].Bytes != nil {
			last, ok = b.replay[i], true
		}
	}
	return last, ok
}

// TCPWriter is the TCP subreceiver of a receiver without a gnet loop (a UDP
// receiver). The loop copies messages into a batch and hands each batch to a
// writer goroutine that owns the connection: it dials with backoff, writes every
// current template first on each new connection, then the queued batches with
// one writev each. Bytes handed over and not yet written are bounded by the
// high-water mark; what does not fit is dropped and counted.
//
// While the writer has nothing in flight and the connection is up, the loop
// writes a batch itself with one non-blocking write and hands over only what the
// socket did not take: a subreceiver that keeps up costs no thread hand-off.
// Whoever writes owns the connection's sequence numbers; inflight == 0 passes
// them from the writer to the loop, a queued batch passes them back.
//
// Sequence numbers are written per connection and domain just before writing: a
// new connection starts a new transport session, and its templates (fetched from
// the loop when it connects) must be numbered as the data that follows them on
// that connection (RFC 7011 §3.1).
type TCPWriter struct {
	host Host
	addr string
	hwm  int
	m    *Metrics
	link link // state written by the writer

	cur *streamBatch // event-loop only
	// reprime (loop only) is set when a message carrying templates was dropped
	// at the high-water mark: every current template goes into the batch before
	// the next message taken, so the collector can decode what follows.
	reprime bool
	follow  map[uint32]uint32
	scratch Sequencer // numbers of reprimed templates, rewritten by whoever writes

	inflight atomic.Int64 // bytes handed to the writer and not yet written or dropped

	mu    sync.Mutex
	queue []*streamBatch
	// free are written batches kept for reuse, up to hwm bytes of capacity: a
	// writer that fell behind leaves many batches in flight, and allocating
	// (and clearing) them again each time costs the loop more than copying.
	free      []*streamBatch
	freeBytes int
	lastBatch int // size of the last batch flushed (loop only)
	conn      net.Conn
	stopped   bool
	// raw is the connection for the loop's direct writes: set once the templates
	// are written, cleared before the connection is closed; conns counts the
	// connections served (raw belongs to the last).
	raw   syscall.RawConn
	conns uint64
	seq   Sequencer // the current connection's numbers (see above)

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	prime  []byte // writer only

	sp *Spooler // nil: no spool (see spooler_writer.go)
}

var _ Output = (*TCPWriter)(nil)

// NewTCPWriter makes the subreceiver at addr of host, which holds at most hwm
// bytes not yet written; its writer starts with Start.
func NewTCPWriter(host Host, addr string, hwm int, m *Metrics, log *slog.Logger) *TCPWriter {
	ctx, cancel := context.WithCancel(context.Background())
	s := &TCPWriter{
		host: host, addr: addr, hwm: hwm, m: m,
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	s.link.init(addr, log, m)
	return s
}

func (s *TCPWriter) Name() string { return s.addr }

// SetQueueBytes takes a new high-water mark (a reload): what is in flight
// above it is still written; no batch is added until below it. hwm is written
// under mu, which recycle (on the writer) reads it under; the loop is its only
// writer.
func (s *TCPWriter) SetQueueBytes(hwm int) {
	s.mu.Lock()
	s.hwm = hwm
	s.mu.Unlock()
}

func (s *TCPWriter) queued() int {
	n := int(s.inflight.Load())
	if s.cur != nil {
		n += len(s.cur.buf)
	}
	return n
}

func (s *TCPWriter) Available() bool {
	return s.link.get() != StateDown && s.queued() < s.hwm
}

func (s *TCPWriter) PendingBytes() int { return s.queued() }

// Send copies m into the current batch, or drops it (counted) over the
// high-water mark.
func (s *TCPWriter) Send(m *Message) {
	if s.sp != nil && (s.sp.active || s.link.get() != StateUp && (s.sp.loaded() || s.sp.WaitsForPredecessor())) && s.spoolLive(m) {
		return
	}
	msg, odid, records := m.Bytes, m.ODID, m.Records
	if s.queued()+len(msg) > s.hwm {
		if s.link.get() == StateUp {
			s.drop(m, ReasonQueueFull)
		} else {
			s.drop(m, ReasonSubreceiverDown)
		}
		if m.Templates {
			s.reprime = true
		}
		return
	}
	if s.cur == nil {
		s.cur = s.batch()
	}
	if s.reprime {
		s.reprime = false
		s.appendReprime(msg, odid)
	}
	s.cur.buf = append(s.cur.buf, msg...)
	if m.MadeUp {
		records = notCounted
	}
	s.cur.records = append(s.cur.records, int32(records))
}

// drop counts one message the subreceiver could not take, or puts it into
// the spool. The one place a live message is dropped for queue_full or
// subreceiver_down: the seam of the store-and-forward spool.
func (s *TCPWriter) drop(m *Message, reason string) {
	if s.sp != nil && s.ctx.Err() == nil {
		s.sp.spill(m)
		return
	}
	s.m.Dropped[reason].Inc()
}

// appendReprime adds every current template to the batch before msg, of
// domain odid, the message that follows them: their export time is not later
// than its own (see Host.AppendTemplates). Each template message gets the
// records value notCounted: messages we make up are not counted as sent.
func (s *TCPWriter) appendReprime(msg []byte, odid uint32) {
	if s.follow == nil {
		s.follow = make(map[uint32]uint32, 1)
		s.scratch = NewSequencer()
	}
	clear(s.follow)
	s.follow[odid] = binary.BigEndian.Uint32(msg[4:8])
	start := len(s.cur.buf)
	s.cur.buf = s.host.AppendTemplates(s.cur.buf, &s.scratch, ipfix.MaxMessageLen, s.follow)
	for off := start; off+ipfix.HeaderLen <= len(s.cur.buf); {
		off += int(binary.BigEndian.Uint16(s.cur.buf[off+2 : off+4]))
		s.cur.records = append(s.cur.records, notCounted)
	}
}

// notCounted, as the records of a message in a batch, marks a template message
// the balancer made up: it carries no data record and is not counted as sent
// or dropped.
const notCounted = -1

// batch returns an empty batch, recycled when possible.
func (s *TCPWriter) batch() *streamBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		s.freeBytes -= cap(b.buf)
		return b
	}
	// Sized for a batch like the last one, so it does not grow while filled.
	size := max(streamBatchBytes, s.lastBatch+s.lastBatch/4)
	return &streamBatch{buf: make([]byte, 0, size), records: make([]int32, 0, 64)}
}

func (s *TCPWriter) recycle(bs []*streamBatch) {
	s.mu.Lock()
	for _, b := range bs {
		if s.freeBytes+cap(b.buf) <= s.hwm {
			b.reset()
			s.free = append(s.free, b)
			s.freeBytes += cap(b.buf)
		}
	}
	s.mu.Unlock()
}

// Flush writes the batch itself when the socket takes it, or hands it to the
// writer.
func (s *TCPWriter) Flush() {
	b := s.cur
	if b == nil || len(b.records) == 0 {
		return
	}
	s.lastBatch = len(b.buf)
	if s.inflight.Load() == 0 && s.link.get() == StateUp && s.writeDirect(b) {
		if m, ok := b.lastReplayed(len(b.buf)); ok {
			// Nothing was in flight: every batch before it is written.
			s.sp.written(m)
			s.sp.ackWritten()
		}
		b.reset()
		return // all written; the batch is reused
	}
	s.cur = nil
	s.m.Queued.Store(s.inflight.Add(int64(len(b.buf) - b.done)))
	s.mu.Lock()
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// writeDirect numbers b and writes what the socket takes now, without blocking;
// it reports whether all of b was written. Loop only, with nothing in flight.
func (s *TCPWriter) writeDirect(b *streamBatch) bool {
	s.mu.Lock()
	raw, conn := s.raw, s.conns
	s.mu.Unlock()
	if raw == nil {
		return false
	}
	renumber(b.buf, b.records, &s.seq)
	b.numberedFor = conn
	n := 0
	_ = raw.Write(func(fd uintptr) bool {
		for n < len(b.buf) {
			// Raw, as the socket is non-blocking: see IOVWriter.write.
			w, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b.buf[n])), uintptr(len(b.buf)-n))
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 || int(w) <= 0 {
				break // EAGAIN: the writer waits for room; an error: it reports it
			}
			n += int(w)
		}
		return true
	})
	b.done = n
	s.countWritten(b, 0, n)
	return n == len(b.buf)
}

// countWritten counts the messages of b that end in (from, to] as sent and
// returns how many end after to (not written).
func (s *TCPWriter) countWritten(b *streamBatch, from, to int) (unwritten int) {
	var msgs, bytes, records int
	off := 0
	for i, r := range b.records {
		n := int(binary.BigEndian.Uint16(b.buf[off+2 : off+4]))
		off += n
		if off > to {
			for _, r := range b.records[i:] {
				if r != notCounted {
					unwritten++
				}
			}
			break
		}
		if off > from && r != notCounted {
			msgs++
			bytes += n
			records += int(r)
		}
	}
	if msgs > 0 {
		s.m.SentMessages.Add(msgs)
		s.m.SentBytes.Add(bytes)
		s.m.SentRecords.Add(records)
	}
	return unwritten
}

func (s *TCPWriter) Start() {
	if s.sp != nil {
		s.sp.start(s.pumpSpool)
	}
	go s.run()
}

// Stop ends the writer: it closes the connection, drops what is still queued
// (counted) and waits for the goroutines to exit.
func (s *TCPWriter) Stop() {
	s.cancel()
	s.mu.Lock()
	s.stopped = true
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-time.After(streamStopWait):
		s.link.log.Warn("subreceiver writer did not stop", "subreceiver", s.addr)
	}
	// What the writer wrote before it ended (the loop is ours): the spool's
	// position persisted at its Close is after it, and no further.
	s.sp.ackWritten()
	if s.cur != nil {
		n := 0
		for _, r := range s.cur.records {
			if r != notCounted {
				n++
			}
		}
		s.m.Dropped[ReasonSubreceiverDown].Add(n)
		s.cur = nil
	}
	if s.sp != nil {
		s.sp.halt()
		go s.sp.Close()
	}
}

// run is the writer goroutine: connect, serve the connection until it fails,
// reconnect with backoff (100 ms doubling to 5 s).
func (s *TCPWriter) run() {
	defer close(s.done)
	defer s.dropQueued()
	for s.ctx.Err() == nil {
		d := net.Dialer{Timeout: DialTimeout}
		c, err := d.DialContext(s.ctx, "tcp", s.addr)
		if err == nil {
			s.link.connected()
			err = s.serve(c)
		}
		if s.ctx.Err() != nil {
			return
		}
		s.link.set(StateDown, err)
		t := time.NewTimer(s.link.nextWait())
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

// serve writes the templates, then the queued batches, until the connection or
// the subreceiver ends.
func (s *TCPWriter) serve(c net.Conn) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = c.Close()
		return net.ErrClosed
	}
	s.conn = c
	s.conns++
	id := s.conns
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conn, s.raw = nil, nil
		s.mu.Unlock()
		_ = c.Close()
	}()
	// The collector sends nothing; a read returns when it closes or resets the
	// connection, which a write alone notices only one batch late (lost).
	dead := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(dead)
	}()

	prime, ok := s.templates(dead)
	if !ok {
		return net.ErrClosed
	}
	s.seq = NewSequencer()
	renumber(prime, nil, &s.seq)
	if _, err := c.Write(prime); err != nil {
		return err
	}
	if sc, ok := c.(syscall.Conn); ok {
		raw, err := sc.SyscallConn()
		if err == nil {
			s.mu.Lock()
			s.raw = raw
			s.mu.Unlock()
		}
	}
	s.link.set(StateUp, nil)

	var taken []*streamBatch
	var bufs net.Buffers
	for {
		s.mu.Lock()
		taken = append(taken[:0], s.queue...)
		clear(s.queue)
		s.queue = s.queue[:0]
		s.mu.Unlock()
		if len(taken) == 0 {
			select {
			case <-s.wake:
				continue
			case <-dead:
				return io.ErrUnexpectedEOF
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
		}
		bufs = bufs[:0]
		for _, b := range taken {
			if b.numberedFor != id {
				// Numbered (and maybe begun) on another connection: this one
				// starts at a message boundary, numbered from what it was sent.
				first := s.skipTorn(b)
				renumber(b.buf[b.done:], b.records[first:], &s.seq)
			}
			bufs = append(bufs, b.buf[b.done:])
		}
		w := bufs // WriteTo consumes its receiver
		n, err := w.WriteTo(c)
		s.account(taken, int(n), ReasonConnectionLost) // what a failed write left
		clear(bufs)
		s.recycle(taken)
		clear(taken)
		if err != nil {
			return err
		}
	}
}

// skipTorn moves b.done, what the loop wrote of b on its connection, to the
// Start of the next message, and returns that message's index: a message
// written in part on a connection that died cannot be completed on another (the
// collector would read from its middle), so it is dropped and counted.
func (s *TCPWriter) skipTorn(b *streamBatch) int {
	off, i := 0, 0
	for off < b.done {
		off += int(binary.BigEndian.Uint16(b.buf[off+2 : off+4]))
		i++
	}
	if off > b.done {
		if b.records[i-1] != notCounted {
			s.m.Dropped[ReasonConnectionLost].Inc()
		}
		s.m.Queued.Store(s.inflight.Add(-int64(off - b.done)))
		b.done = off
	}
	return i
}

// templates asks the loop for every current template (Host.AppendTemplates
// is event-loop only) and waits for the answer.
func (s *TCPWriter) templates(dead <-chan struct{}) ([]byte, bool) {
	ch := make(chan []byte, 1)
	buf := s.prime[:0]
	s.host.OnLoop(func() {
		if s.sp.replayPrimes() && s.nothingQueued() {
			// The replay's templates come first (pumpSpool): the current
			// ones, stamped later than the replayed data, would put the
			// connection's export time in history.
			ch <- buf[:0]
			return
		}
		scratch := NewSequencer() // numbers are rewritten by the writer
		ch <- s.host.AppendTemplates(buf, &scratch, ipfix.MaxMessageLen, s.queuedExportTimes())
	})
	select {
	case p := <-ch:
		s.prime = p
		return p, true
	case <-dead:
	case <-s.ctx.Done():
	}
	s.prime = nil // the loop may still append to the old buffer
	return nil, false
}

// nothingQueued reports whether no batch waits for the writer and the loop's
// has no message. Loop only.
func (s *TCPWriter) nothingQueued() bool {
	s.mu.Lock()
	n := len(s.queue)
	s.mu.Unlock()
	return n == 0 && (s.cur == nil || len(s.cur.records) == 0)
}

// queuedExportTimes is the first export time per domain of the batches that
// wait for the writer, which follow the templates on a new connection (see
// Host.AppendTemplates); nil when nothing waits. Loop only.
func (s *TCPWriter) queuedExportTimes() map[uint32]uint32 {
	follow := make(map[uint32]uint32)
	s.mu.Lock()
	for _, b := range s.queue {
		ipfix.FirstExportTimes(follow, b.buf)
	}
	s.mu.Unlock()
	if s.cur != nil {
		ipfix.FirstExportTimes(follow, s.cur.buf)
	}
	s.sp.clamp(follow)
	if len(follow) == 0 {
		return nil
	}
	return follow
}

// account counts the messages of batches of which written bytes reached the
// socket as sent, the rest as dropped for reason, and releases their queue
// bytes. Bytes the loop wrote (before done) were counted by it.
func (s *TCPWriter) account(bs []*streamBatch, written int, reason string) {
	var lost, total int
	for _, b := range bs {
		rest := len(b.buf) - b.done
		total += rest
		to := b.done + min(max(written, 0), rest)
		lost += s.countWritten(b, b.done, to)
		if m, ok := b.lastReplayed(to); ok {
			s.sp.written(m)
		}
		written -= rest
	}
	if lost > 0 {
		s.m.Dropped[reason].Add(lost)
	}
	s.m.Queued.Store(s.inflight.Add(-int64(total)))
}

// dropQueued counts what is still queued when the writer ends.
func (s *TCPWriter) dropQueued() {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	s.account(q, 0, ReasonSubreceiverDown)
	s.m.Up.Store(0)
}

// renumber rewrites the sequence numbers of the messages in buf, back to back,
// for this connection; records holds each message's data records (nil: none,
// template-only messages).
func renumber(buf []byte, records []int32, seq *Sequencer) {
	for i, off := 0, 0; off+ipfix.HeaderLen <= len(buf); i++ {
		n := int(binary.BigEndian.Uint16(buf[off+2 : off+4]))
		var rec int
		if records != nil {
			rec = max(int(records[i]), 0) // notCounted: no data record
		}
		seq.Put(buf[off:off+ipfix.HeaderLen], binary.BigEndian.Uint32(buf[off+12:off+16]), rec)
		off += n
	}
}
