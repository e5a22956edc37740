package balancer_test

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// A RoundRobin receiver with a spool does not pick a subreceiver that is
// still connecting: what arrives meanwhile goes to the spool, not to a queue
// in memory that a failed connection would leave there (and a stop would
// drop). The subreceiver here stays connecting: its listener's accept queue
// is full, so the kernel drops its SYNs.
func TestSpoolRoundRobinSkipsConnectingSubreceivers(t *testing.T) {
	addr := stuckListener(t)
	cfg := receiverConfig(config.RoundRobin)
	cfg.Subreceivers = []config.Subreceiver{{Addr: addr, Proto: config.TCP}}
	cfg.Spool = config.Spool{Dir: t.TempDir(), MaxBytes: 1 << 30, MinFreeBytes: 256 << 20, Drop: "oldest"}
	r, stop := runReceiver(t, cfg, balancer.Options{ShutdownTimeout: time.Second})
	exp, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer exp.Close()
	clock := uint32(1_700_000_000)
	msgs := newTicking(&clock, spoolTemplate).messages(t, 0, 2_000) // far under the queue
	writeAll(t, exp, msgs)
	received := `ipfix_balancer_received_messages_total{stream="fullflow",dpi="0"}`
	testenv.WaitFor(t, 10*time.Second, "every message received", func() bool {
		return metricValue(t, r, received) >= float64(len(msgs))
	})
	spooled := metricValue(t, r, `ipfix_balancer_spool_spooled_messages_total{stream="fullflow",dpi="0"}`)
	assert.Equal(t, float64(len(msgs)), spooled, "every message spooled while the subreceiver connects")
	stop()
	assert.NotEmpty(t, segmentsIn(t, cfg.Spool.Dir), "left on disk for the next run")
}

// stuckListener listens on a loopback port whose accept queue is full (backlog
// 0, one connection never accepted): a dial to it stays connecting, its SYNs
// dropped, for the kernel's retransmission timeouts.
func stuckListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = filler.Close() })
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	if c, err := d.Dial("tcp", addr); err == nil {
		_ = c.Close()
		t.Fatalf("a second dial to %s connected: the accept queue is not full", addr)
	}
	return addr
}
