// Package testenv holds what tests of several packages share: a loopback IPFIX
// collector built on package ipfix, and a private ClickHouse server. Test code only.
package testenv

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// CollectorStats is what a Collector has seen since it started.
type CollectorStats struct {
	Sessions int // transport sessions accepted (TCP) or sources seen (UDP)
	Messages int
	// DataMessages counts the messages that carried at least one data record
	// (Messages less the template-only ones a sender adds).
	DataMessages int
	Records      int // data records decoded
	// Undecoded counts data sets the collector could not decode (template unknown
	// in that session, or malformed): each is data a real collector would lose.
	Undecoded int
	// SequenceGaps counts data records missing per the sequence numbers received
	// (per session and observation domain), OutOfOrder messages numbered backwards.
	SequenceGaps uint64
	OutOfOrder   uint64
	// MaxDatagram is the largest UDP datagram received.
	MaxDatagram int
	// Refused counts TCP sessions the collector closed because the export time
	// of a message went backwards in its observation domain (see Refusals);
	// TooOld counts UDP messages ignored for an export time too far in the
	// past. Both mirror IPFIXcol2 (see checkExportTime).
	Refused int
	TooOld  int
}

// Refusal is why the collector closed a TCP session: the message of domain
// ODID carried export time Got, before Previous, the last one of that domain on
// the session.
type Refusal struct {
	Remote        string
	ODID          uint32
	Previous, Got uint32
	Reason        string
}

// ReasonExportTimeInHistory is IPFIXcol2's message for a refused export time.
const ReasonExportTimeInHistory = "Setting Export Time in history is not allowed for this type of Transport Session."

// udpSnapshotLifetime is how far (s) a UDP message's export time may lag the
// newest one of its domain before IPFIXcol2 ignores its records: libfds'
// SNAPSHOT_DEF_LIFETIME.
const udpSnapshotLifetime = 15

// Collector is an IPFIX collector on a loopback port. It decodes every message
// with a template cache per session, like a real collector, and keeps a multiset
// of the records it decoded, so tests can compare what arrived with what was sent.
type Collector struct {
	t        testing.TB
	proto    string
	addr     string
	stall    bool
	throttle int // bytes per second, 0: as fast as it can
	// gate is closed while the collector reads; Pause replaces it with an open
	// one that its TCP sessions wait on before each read.
	gate chan struct{}

	mu       sync.Mutex
	ln       net.Listener
	pc       net.PacketConn
	conns    map[net.Conn]struct{}
	stats    CollectorStats
	records  map[string]int
	refusals []Refusal
	udp      map[string]*collectorSession
	wg       sync.WaitGroup
	// byID: records are identified by their first field, a unique number, and
	// counted in ids (index = id) instead of the fingerprint multiset.
	byID bool
	ids  []uint8
}

// CollectorOption changes a Collector.
type CollectorOption func(*Collector)

// Stalled makes a TCP collector accept connections and never read from them, as a
// collector stuck on its disk would.
func Stalled() CollectorOption { return func(c *Collector) { c.stall = true } }

// Throttled makes a TCP collector read at most about bytesPerSecond, in 8 KiB
// reads: a collector slower than its input, so the sender meets a full socket.
func Throttled(bytesPerSecond int) CollectorOption {
	return func(c *Collector) { c.throttle = bytesPerSecond }
}

// CountByID makes the collector count records by their first field, which the
// sender numbers 1, 2, 3…: cheap enough for millions of records (see IDCounts).
func CountByID() CollectorOption { return func(c *Collector) { c.byID = true } }

// IDCounts returns how often each record id arrived (index = id).
func (c *Collector) IDCounts() []uint8 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint8(nil), c.ids...)
}

// StartCollector starts a collector on 127.0.0.1 for proto "tcp" or "udp". It stops
// at the end of the test.
func StartCollector(t testing.TB, proto string, opts ...CollectorOption) *Collector {
	t.Helper()
	c := &Collector{t: t, proto: proto, records: make(map[string]int), conns: make(map[net.Conn]struct{}), udp: make(map[string]*collectorSession)}
	c.gate = make(chan struct{})
	close(c.gate)
	for _, o := range opts {
		o(c)
	}
	c.listen("127.0.0.1:0")
	t.Cleanup(c.Stop)
	return c
}

// Addr is the collector's "host:port".
func (c *Collector) Addr() string { return c.addr }

// Network is "tcp" or "udp".
func (c *Collector) Network() string { return c.proto }

func (c *Collector) listen(addr string) {
	c.t.Helper()
	var err error
	for try := 0; try < 50; try++ { // the old port may linger briefly after Stop
		if c.proto == "udp" {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", addr); err == nil {
				_ = pc.(*net.UDPConn).SetReadBuffer(8 << 20)
				c.mu.Lock()
				c.pc = pc
				c.addr = pc.LocalAddr().String()
				c.mu.Unlock()
				c.wg.Add(1)
				go c.readUDP(pc)
				return
			}
		} else {
			var ln net.Listener
			if ln, err = net.Listen("tcp", addr); err == nil {
				c.mu.Lock()
				c.ln = ln
				c.addr = ln.Addr().String()
				c.mu.Unlock()
				c.wg.Add(1)
				go c.accept(ln)
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("collector: listen %s %s: %v", c.proto, addr, err)
}

// Pause makes the TCP sessions stop reading (the connections stay open), as a
// collector busy elsewhere would: the sender meets a full socket. Resume ends it.
func (c *Collector) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.gate:
		c.gate = make(chan struct{})
	default: // already paused
	}
}

// Resume makes paused TCP sessions read again.
func (c *Collector) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.gate:
	default:
		close(c.gate)
	}
}

// wait blocks while the collector is paused.
func (c *Collector) wait() {
	c.mu.Lock()
	g := c.gate
	c.mu.Unlock()
	<-g
}

// gatedReader reads from r only while its collector is not paused.
type gatedReader struct {
	c *Collector
	r io.Reader
}

func (g gatedReader) Read(p []byte) (int, error) {
	g.c.wait()
	return g.r.Read(p)
}

// Stop closes the listener and every connection, as a collector that dies would.
// A paused collector is resumed first, so its sessions see the close.
func (c *Collector) Stop() {
	c.Resume()
	c.mu.Lock()
	if c.ln != nil {
		_ = c.ln.Close()
		c.ln = nil
	}
	if c.pc != nil {
		_ = c.pc.Close()
		c.pc = nil
	}
	for conn := range c.conns {
		_ = conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// Shutdown stops the collector as one that exits cleanly would: it stops
// accepting and half-closes each session (FIN), then reads on until the
// sender, which sees the end of the stream, closes its side (at most 5 s,
// then Stop). Nothing the sender's kernel handed over is lost. Stop closes at
// once instead, losing what the kernel had taken for the collector but it had
// not read yet, and the message it was in the middle of: bytes the sender
// counts as sent, and IPFIX over TCP cannot tell it they were lost.
func (c *Collector) Shutdown() {
	c.Resume()
	c.mu.Lock()
	if c.ln != nil {
		_ = c.ln.Close()
		c.ln = nil
	}
	for conn := range c.conns {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Stop()
	}
}

// Restart listens again on the same address after Stop.
func (c *Collector) Restart() { c.listen(c.addr) }

// Stats returns a snapshot of the counters.
func (c *Collector) Stats() CollectorStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Refusals lists the TCP sessions the collector refused, in order.
func (c *Collector) Refusals() []Refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Refusal(nil), c.refusals...)
}

// Records returns a copy of the multiset of decoded records (see Fingerprint).
func (c *Collector) Records() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.records))
	for k, v := range c.records {
		out[k] = v
	}
	return out
}

// WaitRecords waits until the collector decoded at least n records, for at most
// timeout; it reports whether it got there.
func (c *Collector) WaitRecords(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.Stats().Records >= n {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c.Stats().Records >= n
}

func (c *Collector) accept(ln net.Listener) {
	defer c.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conns[conn] = struct{}{}
		c.stats.Sessions++
		c.mu.Unlock()
		c.wg.Add(1)
		go c.serve(conn)
	}
}

func (c *Collector) serve(conn net.Conn) {
	defer c.wg.Done()
	defer func() {
		c.mu.Lock()
		delete(c.conns, conn)
		c.mu.Unlock()
		_ = conn.Close()
	}()
	if c.stall {
		_, _ = io.Copy(io.Discard, io.LimitReader(stallReader{conn}, 0))
		<-closed(conn)
		return
	}
	s := newCollectorSession(true)
	var r io.Reader = conn
	if c.throttle > 0 {
		// A small receive buffer: the sender meets the slowness, not our kernel.
		_ = conn.(*net.TCPConn).SetReadBuffer(64 << 10)
		r = &throttledReader{r: conn, pause: time.Duration(throttleRead * int(time.Second) / c.throttle)}
	}
	r = gatedReader{c: c, r: r}
	fr := ipfix.NewFileReader(r)
	for {
		msg, err := fr.Next()
		if err != nil {
			return
		}
		if ok, ref := s.checkExportTime(msg); !ok {
			ref.Remote = conn.RemoteAddr().String()
			c.mu.Lock()
			c.stats.Refused++
			c.refusals = append(c.refusals, ref)
			c.mu.Unlock()
			return // the deferred Close ends the session, as IPFIXcol2's TCP input does
		}
		c.consume(s, msg)
	}
}

func (c *Collector) readUDP(pc net.PacketConn) {
	defer c.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		c.mu.Lock()
		s := c.udp[from.String()]
		if s == nil {
			s = newCollectorSession(false)
			c.udp[from.String()] = s
			c.stats.Sessions++
		}
		c.stats.MaxDatagram = max(c.stats.MaxDatagram, n)
		c.mu.Unlock()
		_, _ = ipfix.SplitDatagram(buf[:n], func(msg []byte) {
			if ok, _ := s.checkExportTime(msg); !ok {
				c.mu.Lock()
				c.stats.TooOld++
				c.mu.Unlock()
				return
			}
			c.consume(s, msg)
		})
	}
}

type collectorSession struct {
	dec *ipfix.Decoder
	seq ipfix.SequenceTracker
	// tcp: a reliable session, on which export time must never go back.
	tcp bool
	// times holds, per observation domain, the export time of the current
	// context and the newest seen (libfds' time_now and time_newest).
	times map[uint32][2]uint32
}

func newCollectorSession(tcp bool) *collectorSession {
	return &collectorSession{dec: ipfix.NewDecoder(ipfix.NewTemplateCache(0)), tcp: tcp, times: make(map[uint32][2]uint32)}
}

// checkExportTime does what IPFIXcol2 does with the export time of each message
// before it parses it, per transport session and observation domain
// (CESNET/ipfixcol2 src/core/parser.c ipx_parser_process, which calls libfds'
// fds_tmgr_set_time, CESNET/libfds src/template_mgr/template_manager.c):
//   - TCP: a message whose export time is before the domain's previous one
//     (serial-number comparison) is refused with "Setting Export Time in history
//     is not allowed for this type of Transport Session."; the parser blocks the
//     session and the TCP input closes the connection
//     (src/core/parser_plugin.c parser_plugin_process_ipfix), so that message and
//     everything after it on the connection are lost;
//   - UDP: going back is allowed, but a message older than the newest export time
//     of the domain by more than the snapshot lifetime (15 s) has its records
//     ignored ("Received IPFIX Message has too old Export Time").
//
// It reports whether the message may be processed, and if not (TCP) why.
func (s *collectorSession) checkExportTime(msg []byte) (bool, Refusal) {
	odid := binary.BigEndian.Uint32(msg[12:16])
	t := binary.BigEndian.Uint32(msg[4:8])
	prev, seen := s.times[odid]
	if seen && int32(t-prev[0]) < 0 {
		if s.tcp {
			return false, Refusal{ODID: odid, Previous: prev[0], Got: t, Reason: ReasonExportTimeInHistory}
		}
		if int32(t+udpSnapshotLifetime-prev[1]) < 0 {
			return false, Refusal{}
		}
	}
	newest := t
	if seen && int32(prev[1]-t) > 0 {
		newest = prev[1]
	}
	s.times[odid] = [2]uint32{t, newest}
	return true, Refusal{}
}

func (c *Collector) consume(s *collectorSession, msg []byte) {
	var keys []string
	var ids []uint64
	records := 0
	err := s.dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
		if c.byID {
			ids = append(ids, r.Values[0].Uint())
		} else {
			keys = append(keys, Fingerprint(r))
		}
		records++
		return nil
	})
	lost, disorder := s.seq.Observe(binary.BigEndian.Uint32(msg[12:16]), binary.BigEndian.Uint32(msg[8:12]), records)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Messages++
	if records > 0 {
		c.stats.DataMessages++
	}
	c.stats.Records += records
	c.stats.SequenceGaps += lost
	if disorder {
		c.stats.OutOfOrder++
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.stats.Undecoded += max(1, s.dec.SkippedSets())
	}
	for _, k := range keys {
		c.records[k]++
	}
	for _, id := range ids {
		for uint64(len(c.ids)) <= id {
			c.ids = append(c.ids, make([]uint8, max(1024, len(c.ids)))...)
		}
		c.ids[id]++
	}
}

// Fingerprint identifies a decoded record by its template id and field bytes.
func Fingerprint(r *ipfix.Record) string {
	b := make([]byte, 0, 64)
	b = binary.BigEndian.AppendUint16(b, r.Template.ID)
	for _, v := range r.Values {
		b = binary.BigEndian.AppendUint16(b, uint16(len(v.Raw)))
		b = append(b, v.Raw...)
	}
	return string(b)
}

// stallReader reads nothing: a stalled collector leaves bytes in the kernel.
type stallReader struct{ net.Conn }

func (stallReader) Read([]byte) (int, error) { return 0, io.EOF }

// closed returns a channel closed when the peer closes conn or it is closed here.
func closed(conn net.Conn) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		// A zero-byte read does not consume: poll with a 1-byte peek via a tiny
		// deadline loop until the connection errors.
		one := make([]byte, 0)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := conn.Read(one); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				close(ch)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return ch
}

// throttleRead is the most a throttled collector reads at once.
const throttleRead = 8 << 10

// throttledReader sleeps pause after every read of at most throttleRead bytes.
type throttledReader struct {
	r     io.Reader
	pause time.Duration
}

func (t *throttledReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p[:min(len(p), throttleRead)])
	time.Sleep(t.pause)
	return n, err
}
