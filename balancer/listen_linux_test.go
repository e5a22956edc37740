//go:build linux

package balancer

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A handshake the listener answered before it turned deaf completes after it
// (the exporter's final ACK arrives late): the exporter then believes it is
// connected, so the listener must accept that connection (for the drain to pass
// it on to the successor) instead of dropping the ACK and leaving the exporter
// with a connection that is reset later. The exporter's first SYN-ACK is held
// back by a filter on its own socket, so its ACK comes only with the
// listener's SYN-ACK retransmission, about a second later, after
// refuseConnections.
func TestRefuseConnectionsCompletesAnsweredHandshakes(t *testing.T) {
	// A plain TCP listener, as gnet's: Go's net.Listen makes an MPTCP one,
	// which takes no socket filter.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port

	// The exporter: a non-blocking connect whose socket drops what it receives.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	require.NoError(t, unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: 1, Filter: &drop[0]}))
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	require.ErrorIs(t, err, unix.EINPROGRESS)
	time.Sleep(50 * time.Millisecond) // the SYN is answered, the SYN-ACK dropped

	var refuseErr error
	require.NoError(t, raw.Control(func(fd uintptr) { refuseErr = refuseConnections(int(fd), 100*time.Millisecond) }))
	require.NoError(t, refuseErr)
	require.NoError(t, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0))

	// The retransmitted SYN-ACK completes the exporter's side.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	_, err = unix.Poll(pfd, 5000)
	require.NoError(t, err)
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	require.NoError(t, err)
	require.Zero(t, soErr, "the exporter's connect")
	require.NotZero(t, pfd[0].Revents&unix.POLLOUT, "the exporter is connected")

	// ... and the listener has it to accept.
	require.NoError(t, ln.(*net.TCPListener).SetDeadline(time.Now().Add(3*time.Second)))
	conn, err := ln.Accept()
	require.NoError(t, err, "a connection the exporter sees as established is not in the accept queue")
	_ = conn.Close()

	// A new exporter is still refused: its SYN gets no answer.
	c, err := net.DialTimeout("tcp4", ln.Addr().String(), 300*time.Millisecond)
	if err == nil {
		_ = c.Close()
	}
	require.Error(t, err, "a handshake begun after refuseConnections")
}
