//go:build linux

package balancer

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// refuseConnections makes a listening socket complete no more handshakes while
// what is already in its accept queue can still be accepted: a socket filter
// that drops every packet applies to the SYNs and final ACKs that reach the
// listener (Linux runs it in tcp_v4_rcv/tcp_v6_rcv before the handshake code),
// never to connections it already made (they do not inherit a filter attached
// after their creation). An exporter that connects now gets no SYN-ACK, so it
// cannot send anything we would then cut; it is refused once the socket closes
// at exit (or taken by a successor process that listens on the same port).
//
// gnet has no way to close one listener and keep its loop: after a shutdown of
// the listening socket its next accept fails and that ends the loop, with the
// connections still draining on it. So the socket stays open, deaf, until the
// engine stops.
//
// It returns once the accept queue is empty (tcpi_unacked is the queue length
// on a listening socket), or after wait.
func refuseConnections(fd int, wait time.Duration) error {
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(drop)), Filter: &drop[0]}); err != nil {
		return fmt.Errorf("SO_ATTACH_FILTER: %w", err)
	}
	for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(time.Millisecond) {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil || ti.Unacked == 0 {
			return nil
		}
	}
	return nil
}
