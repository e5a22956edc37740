//go:build linux

package balancer

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// runBalancer runs b until the end of the test and waits until it serves.
func runBalancer(t testing.TB, cfg *config.Config) *Balancer {
	t.Helper()
	b, err := NewBalancer(cfg, Options{ShutdownTimeout: time.Second})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("balancer did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !b.Running() {
		select {
		case err := <-done:
			t.Fatalf("balancer ended: %v", err)
		default:
		}
		require.True(t, time.Now().Before(deadline), "balancer not running after 10s")
		time.Sleep(5 * time.Millisecond)
	}
	return b
}

// pinnedThreads lists the threads of this process whose CPU list is cpus.
func pinnedThreads(t testing.TB, cpus string) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	require.NoError(t, err)
	n := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok && strings.TrimSpace(v) == cpus {
				n++
			}
		}
	}
	return n
}

// A reload that lowers queue_bytes applies to a running subreceiver: a collector
// that stalls afterwards holds it to the new mark.
func TestReloadQueueBytesLive(t *testing.T) {
	stalled := testenv.StartCollector(t, "tcp", testenv.Stalled())
	cfg := config.Receiver{Stream: "fullflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Proto: config.TCP,
		Mode: config.All, QueueBytes: 32 << 20, MTU: 1500,
		Subreceivers: []config.Subreceiver{{Addr: stalled.Addr(), Proto: config.TCP}}}
	b := runBalancer(t, &config.Config{Receivers: []config.Receiver{cfg}, ShutdownTimeout: time.Second})
	r := b.Receiver("fullflow/0")
	labels := `stream="fullflow",dpi="0",subreceiver="` + stalled.Addr() + `"`
	testenv.WaitFor(t, 5*time.Second, "subreceiver up", func() bool { return setValue(t, r, `ipfix_balancer_subreceiver_up{`+labels+`}`) == 1 })

	next := cfg
	next.QueueBytes = 1 << 20
	require.NoError(t, b.Reload(&config.Config{Receivers: []config.Receiver{next}, ShutdownTimeout: time.Second}))
	require.Same(t, r, b.Receiver("fullflow/0"), "a queue size change must not restart the receiver")

	msgs := encodeFlows(t, 24<<20/20) // more than the kernel buffers and the old mark hold
	exporter, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer exporter.Close()
	require.NoError(t, exporter.SetWriteDeadline(time.Now().Add(30*time.Second)))
	for _, m := range msgs {
		_, err = exporter.Write(m)
		require.NoError(t, err)
	}
	received := `ipfix_balancer_received_messages_total{stream="fullflow",dpi="0"}`
	testenv.WaitFor(t, 20*time.Second, "every message received", func() bool { return setValue(t, r, received) == float64(len(msgs)) })
	queued := setValue(t, r, `ipfix_balancer_queue_bytes{`+labels+`}`)
	dropped := setValue(t, r, `ipfix_balancer_dropped_messages_total{`+labels+`,reason="queue_full"}`)
	t.Logf("queue %v bytes, %v messages dropped", queued, dropped)
	assert.LessOrEqual(t, queued, float64(next.QueueBytes), "the queue must stay under the mark set by the reload")
	assert.Positive(t, dropped)
}

// A reload that changes cpu re-pins the receiver's loop in place: the
// exporter's TCP session stays up and what it sends arrives.
func TestReloadCPUKeepsSessions(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs to tell pinned from unpinned")
	}
	c := testenv.StartCollector(t, "tcp")
	cfg := config.Receiver{Stream: "fullflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Proto: config.TCP,
		Mode: config.All, QueueBytes: 8 << 20, MTU: 1500,
		Subreceivers: []config.Subreceiver{{Addr: c.Addr(), Proto: config.TCP}}}
	b := runBalancer(t, &config.Config{Receivers: []config.Receiver{cfg}, ShutdownTimeout: time.Second})
	r := b.Receiver("fullflow/0")

	exporter, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer exporter.Close()
	msgs := encodeFlows(t, 20000)
	half := len(msgs) / 2
	for _, m := range msgs[:half] {
		_, err = exporter.Write(m)
		require.NoError(t, err)
	}
	testenv.WaitFor(t, 10*time.Second, "first half", func() bool {
		return setValue(t, r, `ipfix_balancer_received_messages_total{stream="fullflow",dpi="0"}`) == float64(half)
	})

	cpu := runtime.NumCPU() - 1
	before := pinnedThreads(t, fmt.Sprint(cpu))
	set, err := affinity.Parse(fmt.Sprint(cpu))
	require.NoError(t, err)
	next := cfg
	next.CPU = set
	require.NoError(t, b.Reload(&config.Config{Receivers: []config.Receiver{next}, ShutdownTimeout: time.Second}))
	assert.Same(t, r, b.Receiver("fullflow/0"), "a cpu change must not restart the receiver")
	assert.Equal(t, before+1, pinnedThreads(t, fmt.Sprint(cpu)), "the loop's thread must be pinned to CPU %d", cpu)

	for _, m := range msgs[half:] {
		_, err = exporter.Write(m)
		require.NoError(t, err, "the exporter's session must stay up")
	}
	testenv.WaitFor(t, 10*time.Second, "second half", func() bool {
		return setValue(t, r, `ipfix_balancer_received_messages_total{stream="fullflow",dpi="0"}`) == float64(len(msgs))
	})
	assert.Equal(t, float64(1), setValue(t, r, `ipfix_balancer_exporter_sessions_total{stream="fullflow",dpi="0"}`))
	require.True(t, c.WaitRecords(20000, 10*time.Second), "collector got %d of 20000", c.Stats().Records)
	assert.Equal(t, 1, c.Stats().Sessions, "the subreceiver's connection stays too")

	require.NoError(t, b.Reload(&config.Config{Receivers: []config.Receiver{cfg}, ShutdownTimeout: time.Second}))
	assert.Same(t, r, b.Receiver("fullflow/0"))
	assert.Equal(t, before, pinnedThreads(t, fmt.Sprint(cpu)), "no cpu: the loop runs on every CPU again")
}

// A reload that changes udp_read_buffer_bytes sets it on the socket in place.
func TestReloadUDPReadBufferLive(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	cfg := config.Receiver{Stream: "dnsflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Proto: config.UDP,
		Mode: config.All, QueueBytes: 8 << 20, MTU: 1500, UDPReadBuffer: 1 << 20, TemplateLifetime: 30 * time.Minute,
		Subreceivers: []config.Subreceiver{{Addr: c.Addr(), Proto: config.TCP}}}
	b := runBalancer(t, &config.Config{Receivers: []config.Receiver{cfg}, ShutdownTimeout: time.Second})
	r := b.Receiver("dnsflow/0")
	socket := func(r *Receiver) (ino uint64, rcvbuf int) {
		ch := make(chan [2]uint64, 1)
		r.onLoop(func() {
			fd := r.loop.(*udpLoop).fd
			var st unix.Stat_t
			require.NoError(t, unix.Fstat(fd, &st))
			n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
			require.NoError(t, err)
			ch <- [2]uint64{st.Ino, uint64(n)}
		})
		select {
		case v := <-ch:
			return v[0], int(v[1])
		case <-time.After(5 * time.Second):
			require.FailNow(t, "the receiver's loop does not answer")
			return 0, 0
		}
	}
	ino, size := socket(r)
	next := cfg
	next.UDPReadBuffer = 3 << 20
	require.NoError(t, b.Reload(&config.Config{Receivers: []config.Receiver{next}, ShutdownTimeout: time.Second}))
	assert.Same(t, r, b.Receiver("dnsflow/0"), "a read buffer change must not restart the receiver")
	nr := b.Receiver("dnsflow/0")
	select {
	case <-nr.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("receiver not ready after the reload")
	}
	ino2, size2 := socket(nr)
	assert.Equal(t, ino, ino2, "the socket must stay the same")
	// The kernel reports twice what was set (its bookkeeping).
	assert.Equal(t, 2*next.UDPReadBuffer, size2, "SO_RCVBUF after the reload (was %d)", size)
}

// A reload that changes template_lifetime applies to the templates UDP
// exporters already sent, not only to sessions seen later.
func TestReloadTemplateLifetimeLive(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	cfg := config.Receiver{Stream: "dnsflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Proto: config.UDP,
		Mode: config.All, QueueBytes: 8 << 20, MTU: 1500, TemplateLifetime: time.Hour,
		Subreceivers: []config.Subreceiver{{Addr: c.Addr(), Proto: config.TCP}}}
	b := runBalancer(t, &config.Config{Receivers: []config.Receiver{cfg}, ShutdownTimeout: time.Second})
	r := b.Receiver("dnsflow/0")
	conn, err := net.Dial("udp", r.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	msgs := encodeFlows(t, 2000) // the first message carries the template, the others data only
	_, err = conn.Write(msgs[0]) // the template and the first records
	require.NoError(t, err)
	templates := `ipfix_balancer_templates{stream="dnsflow",dpi="0"}`
	testenv.WaitFor(t, 5*time.Second, "template learned", func() bool { return setValue(t, r, templates) == 1 })

	next := cfg
	next.TemplateLifetime = 300 * time.Millisecond
	require.NoError(t, b.Reload(&config.Config{Receivers: []config.Receiver{next}, ShutdownTimeout: time.Second}))
	require.Same(t, r, b.Receiver("dnsflow/0"))
	// The exporter keeps its session alive with data only (no template
	// refresh): housekeeping, once a second, drops the template within about
	// two seconds, where the old lifetime kept it an hour.
	expired := false
	for i := 0; i < 250 && !expired; i++ {
		_, err = conn.Write(msgs[1+i%(len(msgs)-1)])
		require.NoError(t, err)
		time.Sleep(20 * time.Millisecond) // the exporter's pace
		expired = setValue(t, r, templates) == 0
	}
	assert.True(t, expired, "the template outlived the lifetime set by the reload")
	assert.Equal(t, float64(1), setValue(t, r, `ipfix_balancer_exporter_sessions{stream="dnsflow",dpi="0"}`), "the session itself stays")
}

// A reload that changes mtu applies to a running UDP subreceiver: the next
// messages are cut to the new size, on the same socket.
func TestReloadMTULive(t *testing.T) {
	u := testenv.StartCollector(t, "udp")
	cfg := config.Receiver{Stream: "fullflow", Listen: netip.MustParseAddrPort("127.0.0.1:0"), Proto: config.TCP,
		Mode: config.All, QueueBytes: 8 << 20, MTU: 576,
		Subreceivers: []config.Subreceiver{{Addr: u.Addr(), Proto: config.UDP}}}
	b := runBalancer(t, &config.Config{Receivers: []config.Receiver{cfg}, ShutdownTimeout: time.Second})
	r := b.Receiver("fullflow/0")
	msgs := encodeFlows(t, 2000) // 1400-byte messages
	send := func() {
		t.Helper()
		exporter, err := net.Dial("tcp", r.Addr().String())
		require.NoError(t, err)
		defer exporter.Close()
		for _, m := range msgs {
			_, err = exporter.Write(m)
			require.NoError(t, err)
		}
	}
	send()
	require.True(t, u.WaitRecords(2000, 10*time.Second), "got %d of 2000", u.Stats().Records)
	assert.LessOrEqual(t, u.Stats().MaxDatagram, 576-28)

	next := cfg
	next.MTU = 1500
	require.NoError(t, b.Reload(&config.Config{Receivers: []config.Receiver{next}, ShutdownTimeout: time.Second}))
	require.Same(t, r, b.Receiver("fullflow/0"))
	send()
	require.True(t, u.WaitRecords(4000, 10*time.Second), "got %d of 4000", u.Stats().Records)
	assert.Greater(t, u.Stats().MaxDatagram, 576-28, "messages must be cut to the new mtu, not the old one")
	assert.LessOrEqual(t, u.Stats().MaxDatagram, 1500-28)
	assert.Equal(t, 1, u.Stats().Sessions, "the subreceiver's socket stays")
}
