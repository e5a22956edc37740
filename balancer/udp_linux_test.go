package balancer_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	ipfixgen "github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

const udpLabels = `stream="fullflow",dpi="0"`

// udpReceiverConfig is a UDP receiver on a free loopback port feeding collectors.
func udpReceiverConfig(mode config.Mode, subs ...*testenv.Collector) config.Receiver {
	cfg := receiverConfig(mode, subs...)
	cfg.Proto = config.UDP
	cfg.UDPReadBuffer = 8 << 20
	cfg.TemplateLifetime = 30 * time.Minute
	return cfg
}

func dialUDP(t testing.TB, to net.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, to.(*net.UDPAddr))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// udpSender sends datagrams and, every pace datagrams, waits until the receiver
// has taken every message sent so far: loopback UDP loses nothing when the
// receive buffer never fills.
type udpSender struct {
	t        testing.TB
	r        *balancer.Receiver
	messages int
	sent     int
	pace     int
}

func (s *udpSender) send(c *net.UDPConn, msgs ...[]byte) {
	s.t.Helper()
	_, err := c.Write(bytes.Join(msgs, nil))
	require.NoError(s.t, err)
	s.messages += len(msgs)
	if s.sent++; s.sent%s.pace == 0 {
		s.wait()
	}
}

func (s *udpSender) wait() {
	s.t.Helper()
	testenv.WaitFor(s.t, 10*time.Second, "receiver took every datagram", func() bool {
		return metricValue(s.t, s.r, `ipfix_balancer_received_messages_total{`+udpLabels+`}`) >= float64(s.messages)
	})
}

// sendRounds sends tr rounds times, its templates only the first time (one
// exporter session), calling after(records sent so far) after each round; it
// returns the data records sent.
func sendRounds(t testing.TB, snd *udpSender, conn *net.UDPConn, tr *traffic, rounds int, after func(want int)) int {
	t.Helper()
	first := countRecordsIn(t, tr, 0)
	want := 0
	for i := range rounds {
		msgs := tr.messages
		want += tr.count
		if i > 0 {
			msgs = msgs[1:] // the session has the templates
			want -= first
		}
		for _, m := range msgs {
			snd.send(conn, m)
		}
		after(want)
	}
	return want
}

func subUp(t testing.TB, r *balancer.Receiver, c *testenv.Collector) bool {
	return metricValue(t, r, `ipfix_balancer_subreceiver_up{`+udpLabels+`,subreceiver="`+subLabel(c)+`"}`) == 1
}

// Two exporters on one UDP port, told apart by source address; datagrams of 1 to
// 3 messages; a TCP collector gets every record once, decodable and gap-free.
func TestUDPToTCP(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	r := startReceiver(t, udpReceiverConfig(config.All, c))
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, c) })

	a := makeTraffic(t, 30000, 1, 1000, 1)
	b := makeTraffic(t, 30000, 2, 1000, 1_000_001)
	ca, cb := dialUDP(t, r.Addr()), dialUDP(t, r.Addr())
	snd := &udpSender{t: t, r: r, pace: 50}
	for i, j, k := 0, 0, 0; i < len(a.messages) || j < len(b.messages); k++ {
		n := 1 + k%3
		if i < len(a.messages) {
			e := min(i+n, len(a.messages))
			snd.send(ca, a.messages[i:e]...)
			i = e
		}
		if j < len(b.messages) {
			e := min(j+n, len(b.messages))
			snd.send(cb, b.messages[j:e]...)
			j = e
		}
	}
	snd.wait()
	want := mergeRecords(a.records, b.records)
	require.True(t, c.WaitRecords(a.count+b.count, 10*time.Second), "got %d of %d records", c.Stats().Records, a.count+b.count)
	assert.Equal(t, want, c.Records(), "the collector must get every record once")
	st := c.Stats()
	assert.Zero(t, st.Undecoded)
	assert.Zero(t, st.SequenceGaps)
	assert.Zero(t, st.OutOfOrder)
	assert.Equal(t, float64(2), metricValue(t, r, `ipfix_balancer_exporter_sessions{`+udpLabels+`}`))
	assert.Equal(t, float64(a.count+b.count), metricValue(t, r, `ipfix_balancer_received_records_total{`+udpLabels+`}`))
	assert.Zero(t, metricValue(t, r, `ipfix_balancer_parse_errors_total{`+udpLabels+`,kind="unknown_template"}`))
	assert.Zero(t, metricValue(t, r, `ipfix_balancer_exporter_lost_records_total{`+udpLabels+`}`))

	// Templates are scoped to the source: a third exporter sending domain 1 data
	// without templates is not decoded with the first one's.
	cc := dialUDP(t, r.Addr())
	_, err := cc.Write(a.messages[1])
	require.NoError(t, err)
	testenv.WaitFor(t, 5*time.Second, "unknown template counted", func() bool {
		return metricValue(t, r, `ipfix_balancer_parse_errors_total{`+udpLabels+`,kind="unknown_template"}`) == float64(dataSets(t, a.messages[1]))
	})
	assert.Equal(t, float64(3), metricValue(t, r, `ipfix_balancer_exporter_sessions{`+udpLabels+`}`))
}

// An IPv6 UDP receiver.
func TestUDPReceiverIPv6(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	cfg := udpReceiverConfig(config.All, c)
	cfg.Listen = netip.MustParseAddrPort("[::1]:0")
	r := startReceiver(t, cfg)
	require.Equal(t, "::1", r.Addr().(*net.UDPAddr).IP.String())
	tr := makeTraffic(t, 2000, 1, 1400, 1)
	conn := dialUDP(t, r.Addr())
	snd := &udpSender{t: t, r: r, pace: 20}
	for _, m := range tr.messages {
		snd.send(conn, m)
	}
	require.True(t, c.WaitRecords(tr.count, 10*time.Second), "got %d of %d", c.Stats().Records, tr.count)
	assert.Equal(t, tr.records, c.Records())
}

// A malformed message inside a datagram is dropped alone and counted; the
// messages around it are forwarded.
func TestUDPBadMessageDroppedAlone(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	r := startReceiver(t, udpReceiverConfig(config.All, c))
	tr := makeTraffic(t, 200, 1, 1000, 1)
	require.GreaterOrEqual(t, len(tr.messages), 3)
	bad := bytes.Clone(tr.messages[1])
	binary.BigEndian.PutUint16(bad[18:20], 3) // first set length 3 < 4 (RFC 7011 §3.3.2)

	conn := dialUDP(t, r.Addr())
	_, err := conn.Write(bytes.Join([][]byte{tr.messages[0], bad, tr.messages[2]}, nil))
	require.NoError(t, err)
	want := countRecordsIn(t, tr, 0) + countRecordsIn(t, tr, 2)
	require.True(t, c.WaitRecords(want, 5*time.Second), "got %d of %d", c.Stats().Records, want)
	assert.Equal(t, float64(1), metricValue(t, r, `ipfix_balancer_parse_errors_total{`+udpLabels+`,kind="set_length"}`))
	assert.Equal(t, float64(1), metricValue(t, r, `ipfix_balancer_dropped_messages_total{`+udpLabels+`,reason="malformed"}`))
	assert.Equal(t, float64(2), metricValue(t, r, `ipfix_balancer_received_messages_total{`+udpLabels+`}`))
	time.Sleep(50 * time.Millisecond) // nothing else may arrive
	assert.Equal(t, want, c.Stats().Records)
	assert.Zero(t, c.Stats().Undecoded)
}

// TCP in, UDP out: 16 KiB messages are re-packed into datagrams that fit the MTU,
// every record decodable at the collector.
func TestTCPToUDPRepack(t *testing.T) {
	c := testenv.StartCollector(t, "udp")
	cfg := receiverConfig(config.All, c)
	cfg.MTU = 1500
	r := startReceiver(t, cfg)
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, c) })

	tr := makeTraffic(t, 20000, 1, 16<<10, 1)
	perMsg := recordsPerMessage(t, tr)
	conn, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	sent := 0
	for i, m := range tr.messages {
		_, err := conn.Write(m)
		require.NoError(t, err)
		sent += perMsg[i]
		if i%8 == 7 { // ~100 datagrams in flight at most: the collector's buffer holds them
			require.True(t, c.WaitRecords(sent, 10*time.Second), "got %d of %d records", c.Stats().Records, sent)
		}
	}
	require.True(t, c.WaitRecords(tr.count, 10*time.Second), "got %d of %d records", c.Stats().Records, tr.count)
	st := c.Stats()
	assert.LessOrEqual(t, st.MaxDatagram, 1500-28, "a datagram exceeds the MTU payload")
	assert.Equal(t, tr.records, c.Records())
	assert.Zero(t, st.Undecoded)
	assert.Zero(t, st.SequenceGaps)
	assert.Zero(t, st.OutOfOrder)
	series := `ipfix_balancer_sent_messages_total{` + udpLabels + `,subreceiver="` + subLabel(c) + `"}`
	assert.Greater(t, metricValue(t, r, series), float64(10*len(tr.messages)), "16 KiB messages must be re-packed")
	assert.Equal(t, float64(tr.count), metricValue(t, r, `ipfix_balancer_sent_records_total{`+udpLabels+`,subreceiver="`+subLabel(c)+`"}`))
}

// Template messages the balancer makes up for a UDP subreceiver (the templates
// it primes a domain with before the session's first message, re-sends, and
// Message.MadeUp ones) are not the exporter's: like a TCP subreceiver's, they
// are not counted as sent. Both subreceivers of one All receiver count exactly
// the exporter's messages, bytes and records.
func TestUDPSubreceiverCountsOnlyExporterMessages(t *testing.T) {
	cu := testenv.StartCollector(t, "udp")
	ct := testenv.StartCollector(t, "tcp")
	r := startReceiver(t, receiverConfig(config.All, cu, ct))
	testenv.WaitFor(t, 5*time.Second, "subreceivers up", func() bool { return subUp(t, r, cu) && subUp(t, r, ct) })
	tr := makeTraffic(t, 2000, 1, 1400, 1) // every message fits one datagram: none is re-packed
	sendTCP(t, r.Addr(), tr.stream(), 4096)
	require.True(t, cu.WaitRecords(tr.count, 10*time.Second), "udp: got %d of %d records", cu.Stats().Records, tr.count)
	require.True(t, ct.WaitRecords(tr.count, 10*time.Second), "tcp: got %d of %d records", ct.Stats().Records, tr.count)
	bytes := 0
	for _, m := range tr.messages {
		bytes += len(m)
	}
	for _, c := range []*testenv.Collector{cu, ct} {
		labels := udpLabels + `,subreceiver="` + subLabel(c) + `"`
		testenv.WaitFor(t, 5*time.Second, c.Network()+" counted every record", func() bool {
			return metricValue(t, r, `ipfix_balancer_sent_records_total{`+labels+`}`) == float64(tr.count)
		})
		assert.Equal(t, float64(len(tr.messages)), metricValue(t, r, `ipfix_balancer_sent_messages_total{`+labels+`}`), c.Network())
		assert.Equal(t, float64(bytes), metricValue(t, r, `ipfix_balancer_sent_bytes_total{`+labels+`}`), c.Network())
	}
	assert.Greater(t, cu.Stats().Messages, len(tr.messages), "the udp subreceiver got template messages of the balancer's too")
}

// A UDP subreceiver that goes away (ICMP port unreachable) is marked down, and
// when it is back it gets every template again before data.
func TestUDPSubreceiverDownAndBack(t *testing.T) {
	c := testenv.StartCollector(t, "udp")
	r := startReceiver(t, receiverConfig(config.All, c))
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, c) })
	conn, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	first := makeTraffic(t, 1000, 1, 1400, 1)
	_, err = conn.Write(first.stream())
	require.NoError(t, err)
	require.True(t, c.WaitRecords(first.count, 5*time.Second))

	c.Stop()
	more := makeTraffic(t, 20000, 1, 1400, 100_001)
	i := 1 // messages[0] carries templates the session already has
	testenv.WaitFor(t, 5*time.Second, "subreceiver down", func() bool {
		_, err := conn.Write(more.messages[i%len(more.messages)])
		require.NoError(t, err)
		i++
		time.Sleep(5 * time.Millisecond)
		return !subUp(t, r, c)
	})
	c.Restart()
	testenv.WaitFor(t, 10*time.Second, "subreceiver back", func() bool {
		_, err := conn.Write(more.messages[i%len(more.messages)])
		require.NoError(t, err)
		i++
		time.Sleep(10 * time.Millisecond)
		return subUp(t, r, c)
	})
	assert.Zero(t, c.Stats().Undecoded, "the collector restarted: templates must come before data")
	assert.Greater(t, c.Stats().Records, first.count)
	assert.Equal(t, float64(1), metricValue(t, r, `ipfix_balancer_subreceiver_reconnects_total{`+udpLabels+`,subreceiver="`+subLabel(c)+`"}`))
	assert.Positive(t, metricValue(t, r, `ipfix_balancer_dropped_messages_total{`+udpLabels+`,subreceiver="`+subLabel(c)+`",reason="subreceiver_down"}`))
}

// A UDP receiver's TCP subreceiver killed and restarted: the new connection gets
// every template before data, numbered gap-free.
func TestUDPToTCPSubreceiverRestarted(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	r := startReceiver(t, udpReceiverConfig(config.All, c))
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, c) })
	conn := dialUDP(t, r.Addr())
	snd := &udpSender{t: t, r: r, pace: 20}
	first := makeTraffic(t, 5000, 1, 1400, 1)
	for _, m := range first.messages {
		snd.send(conn, m)
	}
	require.True(t, c.WaitRecords(first.count, 10*time.Second))

	c.Stop()
	testenv.WaitFor(t, 5*time.Second, "subreceiver down", func() bool { return !subUp(t, r, c) })
	c.Restart()
	testenv.WaitFor(t, 10*time.Second, "subreceiver back", func() bool { return subUp(t, r, c) })
	second := makeTraffic(t, 5000, 1, 1400, 100_001)
	for _, m := range second.messages[1:] { // data only: the session has the templates
		snd.send(conn, m)
	}
	want := first.count + second.count - countRecordsIn(t, second, 0)
	require.True(t, c.WaitRecords(want, 10*time.Second), "got %d of %d", c.Stats().Records, want)
	st := c.Stats()
	assert.Zero(t, st.Undecoded, "after reconnect the collector must get templates before data")
	assert.Zero(t, st.SequenceGaps)
	assert.Zero(t, st.OutOfOrder)
	assert.Equal(t, 2, st.Sessions)
	assert.Equal(t, float64(1), metricValue(t, r, `ipfix_balancer_subreceiver_reconnects_total{`+udpLabels+`,subreceiver="`+subLabel(c)+`"}`))
}

// A stalled TCP subreceiver of a UDP receiver: its queue stays under the
// high-water mark and the healthy one gets everything.
func TestUDPToTCPStalledSubreceiver(t *testing.T) {
	healthy := testenv.StartCollector(t, "tcp")
	stalled := testenv.StartCollector(t, "tcp", testenv.Stalled())
	cfg := udpReceiverConfig(config.All, healthy, stalled)
	cfg.QueueBytes = 1 << 20
	r := startReceiver(t, cfg)
	testenv.WaitFor(t, 5*time.Second, "subreceivers up", func() bool { return subUp(t, r, healthy) && subUp(t, r, stalled) })
	tr := makeTraffic(t, 20000, 1, 16000, 1)
	conn := dialUDP(t, r.Addr())
	snd := &udpSender{t: t, r: r, pace: 20}
	// ~16 MB: more than the kernel buffers of the stalled connection hold.
	want := sendRounds(t, snd, conn, tr, 16, func(want int) {
		// Paced by the healthy collector (slow under -race), which must lose nothing.
		require.True(t, healthy.WaitRecords(want, 10*time.Second), "healthy got %d of %d", healthy.Stats().Records, want)
	})
	require.True(t, healthy.WaitRecords(want, 20*time.Second), "healthy got %d of %d", healthy.Stats().Records, want)
	assert.Equal(t, want, healthy.Stats().Records)
	assert.Zero(t, healthy.Stats().Undecoded)
	assert.Zero(t, healthy.Stats().SequenceGaps)
	// Written partly by the loop, partly by the writer goroutine: counted once.
	sentRecords := `ipfix_balancer_sent_records_total{` + udpLabels + `,subreceiver="` + healthy.Addr() + `"}`
	testenv.WaitFor(t, 5*time.Second, "sent records counted", func() bool { return metricValue(t, r, sentRecords) >= float64(want) })
	assert.Equal(t, float64(want), metricValue(t, r, sentRecords))
	assert.Positive(t, metricValue(t, r, `ipfix_balancer_dropped_messages_total{`+udpLabels+`,subreceiver="`+stalled.Addr()+`",reason="queue_full"}`))
	assert.LessOrEqual(t, metricValue(t, r, `ipfix_balancer_queue_bytes{`+udpLabels+`,subreceiver="`+stalled.Addr()+`"}`), float64(cfg.QueueBytes))
}

// A TCP subreceiver of a UDP receiver slower than its input: the loop and the
// writer goroutine take turns writing to it (the loop while the writer has
// nothing in flight, the writer with what the socket did not take), and the
// collector still gets every record with gap-free sequence numbers, each
// counted once.
func TestUDPToTCPSlowSubreceiver(t *testing.T) {
	slow := testenv.StartCollector(t, "tcp", testenv.Throttled(2<<20))
	cfg := udpReceiverConfig(config.All, slow)
	cfg.QueueBytes = 64 << 20 // nothing dropped: the point is the hand-offs
	r := startReceiver(t, cfg)
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return subUp(t, r, slow) })
	tr := makeTraffic(t, 20000, 1, 1400, 1) // ~1 MB
	conn := dialUDP(t, r.Addr())
	snd := &udpSender{t: t, r: r, pace: 20}
	queued := `ipfix_balancer_queue_bytes{` + udpLabels + `,subreceiver="` + slow.Addr() + `"}`
	// ~9 MB in bursts, more than the kernel buffers between us and the
	// collector hold (seconds at 2 MB/s). Each burst starts once the writer has
	// emptied its queue into a nearly full socket, so the loop writes again and
	// hands over what the socket does not take.
	want := sendRounds(t, snd, conn, tr, 9, func(int) {
		snd.wait()
		testenv.WaitFor(t, 10*time.Second, "writer queue empty", func() bool { return metricValue(t, r, queued) == 0 })
	})
	require.True(t, slow.WaitRecords(want, 30*time.Second), "got %d of %d", slow.Stats().Records, want)
	st := slow.Stats()
	assert.Equal(t, want, st.Records)
	assert.Zero(t, st.Undecoded)
	assert.Zero(t, st.SequenceGaps)
	assert.Zero(t, st.OutOfOrder)
	sentRecords := `ipfix_balancer_sent_records_total{` + udpLabels + `,subreceiver="` + slow.Addr() + `"}`
	testenv.WaitFor(t, 5*time.Second, "sent records counted", func() bool { return metricValue(t, r, sentRecords) >= float64(want) })
	assert.Equal(t, float64(want), metricValue(t, r, sentRecords))
}

// The UDP loop pins its own thread, like the TCP loop.
func TestUDPPinning(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	cfg := udpReceiverConfig(config.All, c)
	cpu := pinToLastCPU(t, &cfg)
	r := startReceiver(t, cfg)
	assert.True(t, threadPinnedTo(t, cpu), "no thread of this process is pinned to CPU %s", cpu)
	tr := makeTraffic(t, 100, 1, 1400, 1)
	conn := dialUDP(t, r.Addr())
	for _, m := range tr.messages {
		_, err := conn.Write(m)
		require.NoError(t, err)
	}
	require.True(t, c.WaitRecords(tr.count, 5*time.Second))
}

// BenchmarkUDPReceive saturates a UDP receiver pinned to the last CPU with
// 1400-byte datagrams (one message each) sent with sendmmsg from a thread pinned
// to CPU 0. "balancer" forwards to a TCP sink that discards; "relay" is the
// floor to compare with: a bare recvmmsg(64) loop that only counts. pps is what
// the receiver took, lost% what the kernel dropped for want of buffer space.
func BenchmarkUDPReceive(b *testing.B) {
	pinned := affinity.CPUSet{runtime.NumCPU() - 1}
	for _, stream := range []ipfixgen.Stream{"fullflow", "clickstream"} {
		b.Run("balancer/"+string(stream), func(b *testing.B) {
			benchUDPBalancer(b, pinned, generated(b, stream, 20000, 1400))
		})
	}
	b.Run("relay", func(b *testing.B) {
		msgs := generated(b, "fullflow", 20000, 1400)
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(b, err)
		defer pc.Close()
		require.NoError(b, pc.(*net.UDPConn).SetReadBuffer(32<<20))
		raw, err := pc.(*net.UDPConn).SyscallConn()
		require.NoError(b, err)
		var count atomic.Int64
		go func() {
			runtime.LockOSThread()
			_ = affinity.Pin(pinned)
			const batch, slot = 64, 1 << 16
			buf := make([]byte, batch*slot)
			iovs := make([]unix.Iovec, batch)
			hdrs := make([]unix.Mmsghdr, batch)
			for i := range hdrs {
				iovs[i].Base = &buf[i*slot]
				iovs[i].SetLen(slot)
				hdrs[i].Hdr.Iov = &iovs[i]
				hdrs[i].Hdr.SetIovlen(1)
			}
			_ = raw.Read(func(fd uintptr) bool {
				for {
					n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), batch, unix.MSG_DONTWAIT, 0, 0)
					switch errno {
					case 0:
						count.Add(int64(n))
					case unix.EINTR:
					case unix.EAGAIN:
						return false // wait until readable
					default:
						return true // closed
					}
				}
			})
		}()
		conn := dialUDP(b, pc.LocalAddr())
		benchUDP(b, pinned, conn, msgs[1:], func() float64 { return float64(count.Load()) })
	})
}

// generated is n records of a DPI stream (dpisim) in messages of at most
// size bytes; the first message carries the templates.
func generated(t testing.TB, stream ipfixgen.Stream, n, size int) [][]byte {
	t.Helper()
	g, err := ipfixgen.New(stream, 1, 0.2)
	require.NoError(t, err)
	var msgs [][]byte
	enc := ipfix.NewEncoder(1, size)
	enc.SetOutput(func(m []byte) { msgs = append(msgs, bytes.Clone(m)) })
	for _, tm := range g.Templates() {
		enc.AddTemplate(tm)
	}
	rec := make([]byte, 0, 4096)
	for range n {
		id, r := g.Next(rec[:0])
		require.NoError(t, enc.AppendRecord(id, r))
	}
	enc.Flush()
	return msgs
}

// benchUDPBalancer measures a pinned UDP receiver forwarding msgs to a TCP sink
// that discards.
func benchUDPBalancer(b *testing.B, pinned affinity.CPUSet, msgs [][]byte) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	cfg := udpReceiverConfig(config.All)
	cfg.Subreceivers = []config.Subreceiver{{Addr: sink.Addr().String(), Proto: config.TCP}}
	cfg.UDPReadBuffer = 32 << 20
	cfg.QueueBytes = 64 << 20
	cfg.CPU = pinned
	r := startReceiver(b, cfg)
	conn := dialUDP(b, r.Addr())
	_, err = conn.Write(msgs[0])
	require.NoError(b, err)
	received := func() float64 {
		return metricValue(b, r, `ipfix_balancer_received_messages_total{`+udpLabels+`}`)
	}
	testenv.WaitFor(b, 5*time.Second, "templates", func() bool { return received() == 1 })
	benchUDP(b, pinned, conn, msgs[1:], func() float64 { return received() - 1 })
}

// benchUDP sends b.N datagrams cycling through msgs and waits until the receiver
// stops taking them; it reports pps taken and the share lost.
func benchUDP(b *testing.B, pinned affinity.CPUSet, conn *net.UDPConn, msgs [][]byte, received func() float64) {
	raw, err := conn.SyscallConn()
	require.NoError(b, err)
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	r0 := received()
	cpu0 := pinnedThreadsCPU(b, pinned)
	b.ResetTimer()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if runtime.NumCPU() > 1 {
			var mask unix.CPUSet
			mask.Set(0)
			_ = unix.SchedSetaffinity(0, &mask)
		}
		_ = raw.Write(func(fd uintptr) bool {
			sendmmsgN(int(fd), msgs, b.N)
			return true
		})
	}()
	<-done
	// Wait until everything arrived, or nothing moved for 100 ms (the rest was lost).
	last, lastMove := received(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		got := received()
		if got-r0 >= float64(b.N) {
			lastMove = time.Now()
			break
		}
		if got != last {
			last, lastMove = got, time.Now()
		} else if time.Since(lastMove) > 100*time.Millisecond {
			break
		}
	}
	b.StopTimer()
	got := received() - r0
	b.ReportMetric(got/lastMove.Sub(start).Seconds(), "pps")
	b.ReportMetric(100*(1-got/float64(b.N)), "lost%")
	if cpu1 := pinnedThreadsCPU(b, pinned); cpu1 > cpu0 && got > 0 {
		// CPU time of the pinned receiving thread per datagram: its capacity on
		// one core, whatever else the machine runs.
		b.ReportMetric(float64(cpu1-cpu0)/got, "loop-ns/dgram")
	}
}

// pinnedThreadsCPU sums the CPU time (user+system) of this process's threads
// pinned to exactly cpus; 0 on a single-CPU machine.
func pinnedThreadsCPU(t testing.TB, cpus affinity.CPUSet) time.Duration {
	t.Helper()
	if runtime.NumCPU() < 2 {
		return 0
	}
	tasks, err := filepath.Glob("/proc/self/task/*")
	require.NoError(t, err)
	var total time.Duration
	for _, dir := range tasks {
		st, err1 := os.ReadFile(dir + "/status")
		stat, err2 := os.ReadFile(dir + "/stat")
		if err1 != nil || err2 != nil || !strings.Contains(string(st), "Cpus_allowed_list:\t"+cpus.String()+"\n") {
			continue
		}
		// Fields after the ")" closing the command: state is field 3, utime 14, stime 15.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+stt) * 10 * time.Millisecond // USER_HZ = 100
	}
	return total
}

// sendmmsgN sends n datagrams cycling through msgs, 64 per sendmmsg, blocking
// when the socket buffer is full.
func sendmmsgN(fd int, msgs [][]byte, n int) {
	const batch = 64
	hdrs := make([]unix.Mmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	for i := 0; i < n; {
		k := min(batch, n-i)
		for j := range k {
			m := msgs[(i+j)%len(msgs)]
			iovs[j].Base = &m[0]
			iovs[j].SetLen(len(m))
			hdrs[j].Hdr.Iov = &iovs[j]
			hdrs[j].Hdr.SetIovlen(1)
		}
		sent, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(k), 0, 0, 0)
		if errno == unix.EAGAIN || errno == unix.EINTR || errno == unix.ENOBUFS {
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 10)
			continue
		}
		if errno != 0 {
			return
		}
		i += int(sent)
	}
}

// mergeRecords adds up record multisets.
func mergeRecords(ms ...map[string]int) map[string]int {
	u := make(map[string]int)
	for _, m := range ms {
		for k, v := range m {
			u[k] += v
		}
	}
	return u
}

func dataSets(t testing.TB, msg []byte) int {
	t.Helper()
	n := 0
	it := ipfix.Sets(msg)
	for s, ok := it.Next(); ok; s, ok = it.Next() {
		if s.ID >= ipfix.MinDataSetID {
			n++
		}
	}
	require.NoError(t, it.Err())
	return n
}

func recordsPerMessage(t testing.TB, tr *traffic) []int {
	t.Helper()
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	out := make([]int, len(tr.messages))
	for i, m := range tr.messages {
		require.NoError(t, dec.Decode(m, time.Now(), func(*ipfix.Record) error { out[i]++; return nil }))
	}
	return out
}

// subLabel is the subreceiver label value of a collector (see subreceiverLabel).
func subLabel(c *testenv.Collector) string {
	if c.Network() == "udp" {
		return c.Addr() + "/udp"
	}
	return c.Addr()
}
