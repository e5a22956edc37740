//go:build linux

package balancer

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// setValue reads one series of a metric set; 0 when absent.
func setValue(t testing.TB, r *Receiver, series string) float64 {
	t.Helper()
	var b bytes.Buffer
	r.set.WritePrometheus(&b)
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), " "); ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

// encodeFlows encodes n records of one fixed-length template into messages of
// at most 1400 bytes; the first carries the template.
func encodeFlows(t testing.TB, n int) (msgs [][]byte) {
	t.Helper()
	tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}, {ID: 2, Length: 8}, {ID: 8, Length: 4}})
	enc := ipfix.NewEncoder(1, 1400)
	enc.SetExportTime(1_700_000_000)
	enc.SetOutput(func(msg []byte) { msgs = append(msgs, bytes.Clone(msg)) })
	enc.AddTemplate(tmpl)
	rec := make([]byte, 0, 20)
	for i := range n {
		rec = ipfix.AppendUint(rec[:0], uint64(i), 8)
		rec = ipfix.AppendUint(rec, 1500, 8)
		rec = ipfix.AppendUint(rec, 0x0a000001, 4)
		require.NoError(t, enc.AppendRecord(256, rec))
	}
	enc.Flush()
	return msgs
}

// A collector that stops reading and then dies: the messages still in gnet's
// outbound buffer never reach the kernel and are lost with the connection. Sent
// counts only what the kernel took, everything else is dropped by reason: sent +
// dropped = what the subreceiver was given, exactly.
func TestTCPSubConnectionLostIsCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c.(*net.TCPConn) // never read: a collector stuck on its disk
		}
	}()
	cfg := config.Receiver{Stream: "fullflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Proto: config.TCP,
		Mode: config.All, QueueBytes: 64 << 20, MTU: 1500,
		Subreceivers: []config.Subreceiver{{Addr: ln.Addr().String(), Proto: config.TCP}}}
	r, err := New(cfg, Options{ShutdownTimeout: time.Second})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("receiver did not stop")
		}
	}()
	select {
	case <-r.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("receiver not ready")
	}
	var collector *net.TCPConn
	select {
	case collector = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("subreceiver did not connect")
	}
	defer collector.Close()
	labels := `stream="fullflow",dpi="0",subreceiver="` + ln.Addr().String() + `"`
	upSeries := `ipfix_balancer_subreceiver_up{` + labels + `}`
	deadline := time.Now().Add(5 * time.Second)
	for setValue(t, r, upSeries) != 1 {
		require.True(t, time.Now().Before(deadline), "subreceiver not up")
		time.Sleep(5 * time.Millisecond)
	}

	// About 20 MB: more than the kernel buffers of both ends hold.
	msgs := encodeFlows(t, 20<<20/20)
	exporter, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer exporter.Close()
	var stream []byte
	for _, m := range msgs {
		stream = append(stream, m...)
	}
	require.NoError(t, exporter.SetWriteDeadline(time.Now().Add(30*time.Second)))
	_, err = exporter.Write(stream)
	require.NoError(t, err)
	received := `ipfix_balancer_received_messages_total{stream="fullflow",dpi="0"}`
	deadline = time.Now().Add(20 * time.Second)
	for setValue(t, r, received) != float64(len(msgs)) {
		require.True(t, time.Now().Before(deadline), "received %v of %d", setValue(t, r, received), len(msgs))
		time.Sleep(5 * time.Millisecond)
	}

	// What the kernel took: the collector's receive queue plus our send queue
	// (the collector read nothing), once neither moves any more.
	sub := r.outputs[0].(*forward.TCPOnLoop)
	measure := func() (took, gnetHeld, prime int) {
		ch := make(chan [3]int, 1)
		r.onLoop(func() {
			out, err := unix.IoctlGetInt(sub.Conn().Fd(), unix.SIOCOUTQ)
			require.NoError(t, err)
			ch <- [3]int{out, sub.Conn().OutboundBuffered(), sub.PrimedBytes()}
		})
		v := <-ch
		rc, err := collector.SyscallConn()
		require.NoError(t, err)
		in := 0
		require.NoError(t, rc.Control(func(fd uintptr) { in, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }))
		require.NoError(t, err)
		return in + v[0], v[1], v[2]
	}
	took, held, prime := measure()
	deadline = time.Now().Add(10 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond)
		t2, h2, _ := measure()
		if t2 == took && h2 == held {
			break
		}
		took, held = t2, h2
		require.True(t, time.Now().Before(deadline), "the queues did not settle")
	}
	require.Positive(t, held, "gnet must hold bytes the kernel did not take for this test to mean anything")

	// The collector dies with unread data: a reset, and the connection fails.
	require.NoError(t, collector.SetLinger(0))
	require.NoError(t, collector.Close())
	deadline = time.Now().Add(10 * time.Second)
	for setValue(t, r, upSeries) != 0 {
		require.True(t, time.Now().Before(deadline), "subreceiver still up")
		time.Sleep(5 * time.Millisecond)
	}

	sentBytes := setValue(t, r, `ipfix_balancer_sent_bytes_total{`+labels+`}`)
	sent := setValue(t, r, `ipfix_balancer_sent_messages_total{`+labels+`}`)
	lost := setValue(t, r, `ipfix_balancer_dropped_messages_total{`+labels+`,reason="connection_lost"}`)
	dropped := 0.0
	for _, reason := range []string{"queue_full", "subreceiver_down", "send_error", "connection_lost"} {
		dropped += setValue(t, r, `ipfix_balancer_dropped_messages_total{`+labels+`,reason="`+reason+`"}`)
	}
	t.Logf("kernel took %d bytes (%d of templates made up at connection), gnet held %d; sent %v bytes, %v messages; lost %v", took, prime, held, sentBytes, sent, lost)
	// Sent counts whole messages the kernel took; the one it took in part is lost.
	assert.LessOrEqual(t, sentBytes, float64(took-prime), "counted as sent more than the kernel took")
	assert.Greater(t, sentBytes, float64(took-prime-1400), "sent must count what the kernel took")
	assert.Positive(t, lost, "messages in gnet's buffer are lost with the connection")
	assert.Equal(t, float64(len(msgs)), sent+dropped, "every message given to the subreceiver is sent or dropped")
}
