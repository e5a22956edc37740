package main_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	ipfixgen "github.com/ipfix-balancer/ipfix-balancer/ipfix/gen"
)

// A successor that takes the UDP socket and then fails (one of its receivers
// cannot bind: the port is held by another program) leaves its predecessor
// serving every socket: datagrams sent after the failure still reach the
// collector, /metrics still answers, and the failure is counted.
func TestFailedSuccessorLeavesUDPServed(t *testing.T) {
	capture := writeCapture(t, ipfixgen.DNSFlow, 3000)
	msgs, records := readCapture(t, capture)
	c := testenv.StartCollector(t, "tcp")
	dir := t.TempDir()
	port := freeUDPPort(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	config := filepath.Join(dir, "balancer.toml")
	writeConfig(t, config, "All", metricsAddr, port, filepath.Join(dir, "control.sock"), c)
	b, err := os.ReadFile(config)
	require.NoError(t, err)
	b = bytes.Replace(b, []byte(`mode = "All"`), []byte("mode = \"All\"\nproto = \"udp\""), 1)
	require.NoError(t, os.WriteFile(config, b, 0o600))
	d := startDaemon(t, config)

	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
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
stream = "dnsflow"
listen = %q
mode = "All"
subreceivers = [%q]
`, busy.Addr().String(), c.Addr())...)
	require.NoError(t, os.WriteFile(config, b, 0o600))
	old := d.PID()
	d.Signal(syscall.SIGUSR2)
	d.WaitLog(`level=ERROR msg="receiver stopped" receiver=dnsflow/0`, 1) // the successor gives up
	require.Equal(t, old, d.PID())

	send(len(msgs) / 3)
	d.WaitLog("restart failed", 1)
	page := testenv.Scrape(t, metricsAddr)
	assert.Equal(t, 1.0, metricIn(t, page, `ipfix_balancer_handovers_total{result="failure"}`))
	assert.Equal(t, want, c.Stats().Records)
}
