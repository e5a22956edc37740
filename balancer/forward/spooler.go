package forward

import (
	"encoding/binary"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/spool"
)

// spoolTick is how often a subreceiver whose spool holds messages is woken
// to replay (besides the spool's own wake-up when it has read messages): the
// socket draining has no event of its own.
const spoolTick = 10 * time.Millisecond

// ReplayTurn bounds the messages one pump replays: the pump runs on the
// receiver's event loop, and the loop reads the exporter between two turns
// (a pump of a whole queue's worth held the live stream of the other
// subreceivers for tens of milliseconds under -race). A turn that gave its
// full count queues the next one at once.
const ReplayTurn = 128

// Spooler is the store-and-forward side of one TCP subreceiver (All mode):
// where its drop method would lose a live message for queue_full or
// subreceiver_down, the message goes to its spool; from then on every live
// message goes there too, and the spool is replayed on the receiver's loop
// while the subreceiver is up and below half its high-water mark, until the
// replay has caught up; then live messages flow again, after the current
// templates. So the collector gets every message once, in order.
//
// A replayed message is the spool's copy (spool.Message.Bytes): it is
// numbered in place for the connection and kept until the kernel took it,
// then acknowledged; a connection lost before that sends it again, numbered
// anew, after the templates in force at the last acknowledged message.
//
// Event loop only, except the wake-up goroutine, which only schedules work on
// the loop.
type Spooler struct {
	sp   *spool.Spool
	host Host
	log  *slog.Logger

	// active: live messages go to the spool; primed: the spool has been told
	// the templates in force since it became active.
	active, primed bool
	scratch        Sequencer
	tmp            []byte
	follow         map[uint32]uint32

	// cache holds the templates of what Next gave; acked those as of the last
	// acknowledged message (to re-prime a new connection).
	cache, acked *ipfix.TemplateCache
	retained     []replayedMsg // given by Next and not acknowledged, in order
	needPrime    bool          // a new connection: replay templates before the next replayed message
	bufs         [][]byte
	metas        []inFlight

	isLoaded bool // the spool was loaded (cached: loaded)
	// predecessor: when the spool was made, its directory held segments
	// (another process's, which it may still be writing): see
	// TCPOnLoop.Send.
	predecessor bool
	// TCPWriter: the connection that has the replay's templates, the export
	// time per domain of the last replayed message, the last given.
	conn       uint64
	since      map[uint32]uint32
	last       spool.Message
	activeFlag atomic.Bool // active, for the wake-up goroutine
	// wrote (TCPWriter) is the last replayed message its writer goroutine
	// wrote and the loop has not acknowledged yet, or nil.
	wrote     atomic.Pointer[spool.Message]
	scheduled atomic.Bool // a pump is queued on the loop
	pump      func()      // the subreceiver's pump, set by start
	stopOnce  sync.Once
	stop      chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
}

// replayedMsg is one message given by Next.
type replayedMsg struct {
	m       spool.Message // Bytes: the copy we send
	records int32
	sent    bool  // written on the current connection
	end     int64 // where it ends in the connection's stream (TCPOnLoop.given), when sent
}

// NewSpooler wraps sp, a spool not running yet (the subreceiver's Start runs
// it), for a subreceiver of host.
func NewSpooler(sp *spool.Spool, host Host, log *slog.Logger) *Spooler {
	return &Spooler{sp: sp, host: host, log: log, scratch: NewSequencer(),
		cache: ipfix.NewTemplateCache(0), acked: ipfix.NewTemplateCache(0),
		follow: make(map[uint32]uint32, 1), stop: make(chan struct{}), closed: make(chan struct{}),
		predecessor: sp.HasSegments()}
}

// WaitsForPredecessor reports whether the spool waits for its directory,
// where another process (a hand-over predecessor) has left segments, older
// than anything that comes here: live messages go behind them, to the
// spool's buffer (see TCPOnLoop.Send). Event loop only.
func (p *Spooler) WaitsForPredecessor() bool {
	return p.predecessor && !p.loaded()
}

// replayPrimes reports whether a new connection with nothing queued gets its
// templates from the replay: the spool is in use, or waits for a
// predecessor's messages. Nil-safe; event loop only.
func (p *Spooler) replayPrimes() bool {
	return p != nil && (p.active || p.WaitsForPredecessor())
}

// Spool is the spool (its owner closes it).
func (p *Spooler) Spool() *spool.Spool { return p.sp }

// loaded reports whether the spool holds its directory.
func (p *Spooler) loaded() bool {
	if !p.isLoaded {
		p.isLoaded = p.sp.Loaded()
	}
	return p.isLoaded
}

// Active reports whether live messages go to the spool. Event loop only.
func (p *Spooler) Active() bool { return p.active }

// start runs the spool and the wake-up goroutine: pump runs on the loop when
// the spool has read messages, and every spoolTick while it is active.
func (p *Spooler) start(pump func()) {
	p.pump = pump
	p.sp.Run()
	go func() {
		t := time.NewTicker(spoolTick)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-p.sp.Readable():
			case <-t.C:
				// Idle, the loop is left alone: messages a previous run
				// left are announced by Readable.
				if !p.activeFlag.Load() && p.wrote.Load() == nil {
					continue
				}
			}
			p.again()
		}
	}()
}

// Again queues a pump on the loop, unless one is queued already: a pump that
// gave a full turn (ReplayTurn) calls it for the next one.
func (p *Spooler) Again() { p.again() }

// again queues a pump on the loop, unless one is queued already.
func (p *Spooler) again() {
	if p.scheduled.CompareAndSwap(false, true) {
		p.host.OnLoop(func() {
			p.scheduled.Store(false)
			p.pump()
		})
	}
}

// halt stops the wake-up goroutine.
func (p *Spooler) halt() { p.stopOnce.Do(func() { close(p.stop) }) }

// spill puts a live message into the spool: the templates in force first when
// the spool becomes active. What the spool cannot take it counts itself.
func (p *Spooler) spill(m *Message) {
	if !p.primed {
		clear(p.follow)
		p.follow[m.ODID] = binary.BigEndian.Uint32(m.Bytes[4:8])
		p.tmp = p.host.AppendTemplates(p.tmp[:0], &p.scratch, ipfix.MaxMessageLen, p.follow)
		if len(p.tmp) > 0 {
			p.sp.Templates(p.tmp)
			// The collector has them (it was live until now): so does the
			// replay, and a new connection's re-prime.
			learnTemplates(p.cache, p.tmp)
			learnTemplates(p.acked, p.tmp)
		}
		p.primed = true
		if !p.active {
			p.log.Info("subreceiver spooling", "spool", p.sp.Dir())
		}
	}
	p.setActive(true)
	p.sp.Append(m.Bytes)
}

func (p *Spooler) setActive(a bool) {
	p.active = a
	p.activeFlag.Store(a)
	p.sp.SetReplaying(a)
	if !a {
		p.primed = false
	}
}

// caughtUp reports whether the replay has given and written everything the
// spool held, so live messages may follow: then the spool is inactive.
func (p *Spooler) caughtUp() bool {
	for i := range p.retained {
		if !p.retained[i].sent {
			return false
		}
	}
	if !p.sp.Drained() {
		return false
	}
	// A new connection that got no replayed message needs no replay
	// templates: live messages follow the current ones.
	p.needPrime = false
	p.setActive(false)
	p.log.Info("subreceiver spool replay caught up", "spool", p.sp.Dir())
	return true
}

// taken acknowledges the retained messages that end at or before took, the
// bytes of the connection the kernel took.
func (p *Spooler) taken(took int64) {
	n := 0
	for n < len(p.retained) && p.retained[n].sent && p.retained[n].end <= took {
		learnTemplates(p.acked, p.retained[n].m.Bytes)
		n++
	}
	if n == 0 {
		return
	}
	p.sp.Ack(p.retained[n-1].m)
	clear(p.retained[:n])
	p.retained = p.retained[:copy(p.retained, p.retained[n:])]
}

// lost marks what was not taken as to be sent again on the next connection.
func (p *Spooler) lost() {
	for i := range p.retained {
		p.retained[i].sent = false
	}
	p.needPrime = true
}

// learnTemplates learns the template sets of the messages in b, back to back.
func learnTemplates(c *ipfix.TemplateCache, b []byte) {
	for len(b) >= ipfix.HeaderLen {
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < ipfix.HeaderLen || n > len(b) {
			return
		}
		if hasTemplateSet(b[:n]) {
			_, _ = c.Learn(b[:n], time.Time{})
		}
		b = b[n:]
	}
}

// hasTemplateSet reports whether msg has a template or options template set.
func hasTemplateSet(msg []byte) bool {
	it := ipfix.Sets(msg)
	for set, ok := it.Next(); ok; set, ok = it.Next() {
		if set.ID == ipfix.TemplateSetID || set.ID == ipfix.OptionsTemplateSetID {
			return true
		}
	}
	return false
}

// next gives the next message to replay: one not sent on this connection, or
// a new one from the spool (its templates learned, its records counted).
func (p *Spooler) next(i int) (*replayedMsg, bool) {
	if i < len(p.retained) {
		return &p.retained[i], true
	}
	m, ok := p.sp.Next()
	if !ok {
		return nil, false
	}
	r := replayedMsg{m: m}
	if m.Templates {
		learnTemplates(p.cache, m.Bytes)
	} else if len(m.Bytes) >= ipfix.HeaderLen {
		learnTemplates(p.cache, m.Bytes)
		if sum, err := ipfix.Summarize(p.cache, binary.BigEndian.Uint32(m.Bytes[12:16]), m.Bytes); err == nil {
			r.records = int32(sum.Records)
		}
	}
	p.retained = append(p.retained, r)
	return &p.retained[len(p.retained)-1], true
}

// pumpSpool replays what the spool gives while the subreceiver is up and below
// half its high-water mark, and goes live again once the replay caught up.
// Event loop only, with no batch being built.
func (s *TCPOnLoop) pumpSpool() {
	p := s.sp
	if p == nil || s.stopped || len(s.iov) > 0 || s.host.Context().Err() != nil {
		// Stopping: the replay stops too, so the queue drains and the spool
		// is closed soon (a hand-over successor waits for it).
		return
	}
	if !p.active {
		// Messages a predecessor left in the spool (a restart).
		if !p.sp.Loaded() || p.sp.Drained() {
			return
		}
		p.setActive(true)
		p.primed = true // its segments carry their templates
		p.log.Info("subreceiver spool replay of messages left by a previous run", "spool", p.sp.Dir())
	}
	if s.conn == nil || s.link.get() != StateUp {
		return
	}
	room := s.hwm/2 - s.conn.OutboundBuffered()
	bufs, metas := p.bufs[:0], p.metas[:0]
	size := 0
	// The first not sent on this connection.
	i := 0
	for i < len(p.retained) && p.retained[i].sent {
		i++
	}
	turn := 0
	for size < room && len(bufs) < MaxIovecs-2 && turn < ReplayTurn {
		turn++
		r, ok := p.next(i)
		if !ok {
			break
		}
		i++
		if p.needPrime {
			// A new connection: the templates in force at the last acknowledged
			// message, stamped as what follows them.
			p.needPrime = false
			p.tmp = p.tmp[:0]
			et := binary.BigEndian.Uint32(r.m.Bytes[4:8])
			for _, d := range p.acked.Domains() {
				p.tmp = p.acked.AppendTemplateMessages(p.tmp, d, et, 0, ipfix.MaxMessageLen)
			}
			if len(p.tmp) > 0 {
				renumber(p.tmp, nil, &s.seq)
				prime := append([]byte(nil), p.tmp...)
				bufs = append(bufs, prime)
				size += len(prime)
				metas = append(metas, inFlight{end: int64(size)})
			}
		}
		if r.m.Templates {
			renumber(r.m.Bytes, nil, &s.seq)
		} else {
			s.seq.Put(r.m.Bytes[:ipfix.HeaderLen], binary.BigEndian.Uint32(r.m.Bytes[12:16]), int(r.records))
		}
		bufs = append(bufs, r.m.Bytes)
		size += len(r.m.Bytes)
		metas = append(metas, inFlight{end: int64(size), records: r.records, counted: !r.m.Templates})
		r.sent = true
		r.end = s.given + int64(size)
	}
	p.bufs, p.metas = bufs, metas
	if len(bufs) > 0 {
		// Before the kernel can take any of it: a crash from now on may
		// have delivered it.
		p.sp.Handed(p.retained[i-1].m)
		s.write(bufs, metas)
		clear(p.bufs)
		s.settle()
		s.m.Queued.Store(int64(s.PendingBytes()))
		if turn == ReplayTurn {
			p.again()
		}
		return
	}
	// Nothing more to give and no live message came to see it (the exporter
	// pauses): live again, after the current templates.
	if s.conn != nil && s.link.get() == StateUp && p.caughtUp() {
		s.reprime = true
	}
}

// SetSpooler gives the subreceiver its spool; Start starts the replay of
// what it holds. Call before Start.
func (s *TCPOnLoop) SetSpooler(p *Spooler) { s.sp = p }

// Spooler is the subreceiver's spool side (nil: none).
func (s *TCPOnLoop) Spooler() *Spooler { return s.sp }

// spoolLive routes a live message while the spool is active or the
// subreceiver not connected: to the spool, unless the replay has caught up
// (then the current templates go first and the message goes live). Not
// connected, a message goes to the spool rather than to the queue held for
// the connection: that queue would be sent after the current templates, which
// may not be those it was exported with. While the spool waits for its
// directory (a hand-over successor before its predecessor closed it), the
// queue is used first, then the spool's memory buffer; unless the predecessor
// left segments there (see TCPOnLoop.Send). A stopped subreceiver spools
// nothing more.
func (s *TCPOnLoop) spoolLive(m *Message) bool {
	if s.stopped {
		return false
	}
	if s.sp.active && s.conn != nil && s.link.get() == StateUp && len(s.iov) == 0 && s.sp.caughtUp() {
		s.reprime = true
		return false
	}
	s.sp.spill(m)
	return true
}

// opened tells the spooler of a new connection; it reports whether the
// connection's first bytes are the replay's (no message held while
// connecting, which would need the current templates).
func (p *Spooler) opened(held bool) bool {
	if !p.replayPrimes() {
		return false
	}
	p.needPrime = true
	return !held
}

// spoolPending moves the messages held while not connected into the spool
// instead of dropping them (a stopping subreceiver: a successor or the next
// start replays them).
func (s *TCPOnLoop) spoolPending() {
	if s.sp == nil || len(s.pending) == 0 {
		return
	}
	off := 0
	for _, r := range s.pendingRecords {
		n := int(binary.BigEndian.Uint16(s.pending[off+2 : off+4]))
		msg := s.pending[off : off+n]
		off += n
		m := Message{Bytes: msg, ODID: binary.BigEndian.Uint32(msg[12:16]), MadeUp: r == notCounted}
		if r == notCounted {
			continue // made up: the spool's segments carry their templates
		}
		s.sp.spill(&m)
	}
	s.pending, s.pendingRecords = s.pending[:0], s.pendingRecords[:0]
}

// closeSpool stops the replay and closes the spool, off the loop (Close
// writes what is buffered); the receiver waits for it before it returns
// (CloseSpool). What the spool still holds stays on disk for the next run.
func (s *TCPOnLoop) closeSpool() {
	if s.sp == nil {
		return
	}
	s.sp.halt()
	go s.sp.Close()
}

// Close closes the spool, once; it logs what stays on disk. Safe for
// concurrent use.
func (p *Spooler) Close() {
	p.halt()
	p.closeOnce.Do(func() {
		_ = p.sp.Close()
		if !p.sp.Empty() {
			p.log.Info("spool closed with messages left for the next run", "spool", p.sp.Dir())
		}
		close(p.closed)
	})
	<-p.closed
}

// For a receiver's own spool (RoundRobin), whose replay the receiver spreads
// over its subreceivers.

// Spill puts a live message into the spool (see spill). Event loop only.
func (p *Spooler) Spill(m *Message) { p.spill(m) }

// Start starts the wake-up goroutine, which runs pump on the loop. Once.
func (p *Spooler) Start(pump func()) { p.start(pump) }

// SetActive makes live messages go to the spool (true) or not. Event loop only.
func (p *Spooler) SetActive(a bool) {
	if a && !p.active {
		p.primed = true // what the spool holds carries its templates
	}
	p.setActive(a)
}
