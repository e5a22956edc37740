package main_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// A successor that takes the UDP socket and then fails (one of its receivers
// cannot bind: the port is held by another program) leaves its predecessor
// serving every socket: datagrams sent after the failure still reach the
// collector, /metrics still answers, and the failure is counted. The shipped
// configuration, its dnsflow receiver made a UDP one (the shipped files have
// none) that re-exports what it records to the test's collector.
func TestFailedSuccessorLeavesUDPServed(t *testing.T) {
	capture := writeCapture(t, dpisim.DNSFlow, 3000)
	msgs, records := readCapture(t, capture)
	c := testenv.StartCollector(t, "tcp")
	s := testenv.ShippedConfig(t, "config/default.toml",
		testenv.WithReceiverLines("dnsflow", "[[receiver]]", `proto = "udp"`),
		testenv.WithReceiverLines("dnsflow", "[receiver.recording]", fmt.Sprintf("export = [%q]", c.Addr())))
	require.Equal(t, "udp", s.Protos["dnsflow/0"])
	config, metricsAddr := s.Path, s.Metrics
	b, err := os.ReadFile(config)
	require.NoError(t, err)
	d := startDaemon(t, config)

	conn, err := net.Dial("udp", s.Receivers["dnsflow/0"])
	require.NoError(t, err)
	defer conn.Close()
	want, next := 0, 0
	send := func(n int) {
		t.Helper()
		end := min(next+n, len(msgs))
		for ; next < end; next++ {
			_, err := conn.Write(msgs[next])
			require.NoError(t, err)
			want += len(records[next])
			if next%20 == 19 || next == end-1 {
				if !c.WaitRecords(want, 20*time.Second) {
					t.Fatalf("message %d: collector got %d of %d records", next, c.Stats().Records, want)
				}
			}
		}
	}
	send(len(msgs) / 3)

	// The successor reads the same file: a receiver on a port another program
	// holds makes it fail after it took the UDP socket.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	b = append(b, fmt.Sprintf(`
[[receiver]]
stream = "natflow"
listen = %q
mode = "All"
subreceivers = [%q]
`, busy.Addr().String(), c.Addr())...)
	require.NoError(t, os.WriteFile(config, b, 0o600))
	old := d.PID()
	d.Signal(syscall.SIGUSR2)
	d.WaitLog(`level=ERROR msg="receiver stopped" receiver=natflow/0`, 1) // the successor gives up
	require.Equal(t, old, d.PID())

	send(len(msgs) / 3)
	d.WaitLog("restart failed", 1)
	page := testenv.Scrape(t, metricsAddr)
	assert.Equal(t, 1.0, metricIn(t, page, `ipfix_balancer_handovers_total{result="failure"}`))
	assert.Equal(t, want, c.Stats().Records)
}

// Five restarts by SIGUSR2, back to back, while one DPI reconnects in a loop (short sessions of
// one message of ten records, each ended by the DPI and read to the end),
// another streams on one connection and a third sends over UDP: every record
// reaches the collectors exactly once, no DPI sees a reset or a refused
// connection, and every process hands its sessions over.
//
// The shipped configuration (Recording), its dnsflow receiver made a UDP one
// (the shipped files have none); each receiver re-exports what it records to
// its collector.
func TestRestartsUnderReconnectingExporter(t *testing.T) {
	tcpC := testenv.StartCollector(t, "tcp")
	udpC := testenv.StartCollector(t, "tcp")
	s := testenv.ShippedConfig(t, "config/default.toml",
		testenv.WithReceiverLines("fullflow", "[receiver.recording]", fmt.Sprintf("export = [%q]", tcpC.Addr())),
		testenv.WithReceiverLines("dnsflow", "[[receiver]]", `proto = "udp"`),
		testenv.WithReceiverLines("dnsflow", "[receiver.recording]", fmt.Sprintf("export = [%q]", udpC.Addr())))
	require.Equal(t, "udp", s.Protos["dnsflow/0"])
	metricsAddr := s.Metrics
	d := startDaemon(t, s.Path)
	addr, udpAddr := s.Receivers["fullflow/0"], s.Receivers["dnsflow/0"]

	var (
		mu                sync.Mutex
		short, shortErr   int
		streamed, udpSent int
		errs              []string
		stop              = make(chan struct{})
		wg                sync.WaitGroup
	)
	fail := func(what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		shortErr++
		if len(errs) < 10 {
			errs = append(errs, what+": "+err.Error())
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	wg.Add(3)
	go func() { // the DPI that reconnects
		defer wg.Done()
		for k := 0; k < 5000 && !stopped(); k++ {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				fail("dial", err)
				continue
			}
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			_, err = conn.Write(session(t, uint64(1+k*10)))
			if err == nil {
				err = conn.(*net.TCPConn).CloseWrite()
			}
			if err == nil {
				_, err = io.Copy(io.Discard, conn) // nil at a clean end, ECONNRESET at a reset
			}
			_ = conn.Close()
			if err != nil {
				fail("session", err)
				continue
			}
			mu.Lock()
			short++
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	go func() { // the DPI that streams
		defer wg.Done()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			fail("stream dial", err)
			return
		}
		defer conn.Close()
		for k := 0; k < 100000 && !stopped(); k++ {
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(session(t, uint64(1e9+k*10))); err != nil {
				fail("stream", err)
				return
			}
			mu.Lock()
			streamed++
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	go func() { // the DPI over UDP
		defer wg.Done()
		conn, err := net.Dial("udp", udpAddr)
		if err != nil {
			fail("udp dial", err)
			return
		}
		defer conn.Close()
		for k := 0; k < 100000 && !stopped(); k++ {
			if _, err := conn.Write(session(t, uint64(2e9+k*10))); err != nil {
				fail("udp", err)
				return
			}
			mu.Lock()
			udpSent++
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// progress waits until the reconnecting DPI has ended n more sessions.
	progress := func(n int) {
		t.Helper()
		mu.Lock()
		want := short + n
		mu.Unlock()
		testenv.WaitFor(t, 20*time.Second, "sessions of the reconnecting DPI", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return short >= want
		})
	}
	progress(20)
	// Back to back: each restart as soon as the previous successor serves, while
	// its predecessor may still drain and pass it the sessions it accepts.
	var olds []int
	for i := range 5 {
		old := d.RestartServing()
		require.NotEqual(t, old, d.PID(), "restart %d", i+1)
		olds = append(olds, old)
	}
	for _, pid := range olds {
		require.True(t, testenv.WaitGone(pid, time.Minute), "process %d still runs", pid)
	}
	progress(20)
	close(stop)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("the exporters did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Zero(t, shortErr, "sessions reset or refused: %v", errs)
	tcpWant, udpWant := 10*(short+streamed), 10*udpSent
	tcpC.WaitRecords(tcpWant, 20*time.Second)
	udpC.WaitRecords(udpWant, 20*time.Second)
	t.Logf("%d short sessions, %d streamed and %d UDP messages", short, streamed, udpSent)
	assert.Equal(t, tcpWant, tcpC.Stats().Records, "TCP records at the collector")
	assert.Equal(t, udpWant, udpC.Stats().Records, "UDP records at the collector")
	assert.GreaterOrEqual(t, strings.Count(d.Log(), "exporter session handed over"), 5, "the streaming session is handed over at each restart")
	page := testenv.Scrape(t, metricsAddr)
	assert.Positive(t, metricIn(t, page, `ipfix_balancer_exporter_sessions_total{stream="fullflow",dpi="0"}`))
}

// A restart with many exporter sessions on one receiver, each sending its
// messages in two writes (so reads end mid-message): no session is cut, none
// loses framing, every record arrives once. The old process must not read a
// passed session's socket after the pass, or it takes bytes of the successor's.
// The shipped configuration (Recording), the fullflow receiver re-exporting
// what it records to the test's collector.
func TestRestartWithManySessions(t *testing.T) {
	c := testenv.StartCollector(t, "tcp")
	s := testenv.ShippedConfig(t, "config/default.toml",
		testenv.WithReceiverLines("fullflow", "[receiver.recording]", fmt.Sprintf("export = [%q]", c.Addr())))
	d := startDaemon(t, s.Path)
	addr := s.Receivers["fullflow/0"]

	const sessions = 300
	msg := session(t, 1)
	var (
		mu   sync.Mutex
		sent int
		errs []string
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	for k := range sessions {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				half := len(msg) / 2
				_, err := conn.Write(msg[:half])
				if err == nil {
					time.Sleep(time.Duration(k%3) * time.Millisecond)
					_, err = conn.Write(msg[half:])
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
				mu.Lock()
				sent++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	testenv.WaitFor(t, 20*time.Second, "first messages", func() bool { return c.Stats().Records > 10*sessions })
	// Two restarts back to back: the second as soon as the first successor
	// serves, while it may still adopt the sessions its predecessor passes late.
	var olds []int
	for i := range 2 {
		old := d.RestartServing()
		require.NotEqual(t, old, d.PID(), "restart %d", i+1)
		olds = append(olds, old)
	}
	for _, pid := range olds {
		require.True(t, testenv.WaitGone(pid, time.Minute), "process %d still runs", pid)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	c.WaitRecords(10*sent, 20*time.Second)
	assert.Empty(t, errs, "exporters cut")
	assert.Equal(t, 10*sent, c.Stats().Records)
	assert.NotContains(t, d.Log(), "lost framing")
}
