//go:build linux

package balancer

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// refuseConnections makes a listening socket begin no more handshakes while
// what is already in its accept queue can still be accepted: a socket filter
// that drops every SYN without ACK (Linux runs it in tcp_v4_rcv/tcp_v6_rcv,
// on the listener and on its half-open handshakes, before the handshake code,
// with the TCP header at offset 0). An exporter that connects now gets no
// SYN-ACK, so it cannot send anything we would then cut; it retries, and is
// refused once the socket closes at exit (or taken by a successor process that
// listens on the same port). A handshake the listener answered before completes
// (its final ACK is no SYN): the exporter believes it is connected, so that
// connection must reach the accept queue to be passed on, not be left half
// open to be reset later. Connections made from now on inherit the filter;
// they never receive a bare SYN anyway.
//
// gnet has no way to close one listener and keep its loop: after a shutdown of
// the listening socket its next accept fails and that ends the loop, with the
// connections still draining on it. So the socket stays open, deaf, until the
// engine stops.
//
// It returns once the accept queue is empty (tcpi_unacked is the queue length
// on a listening socket) and the handshakes in flight have had handshakeSettle
// to complete, or after wait.
func refuseConnections(fd int, wait time.Duration) error {
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(dropBareSYN)), Filter: &dropBareSYN[0]}); err != nil {
		return fmt.Errorf("SO_ATTACH_FILTER: %w", err)
	}
	start := time.Now()
	for end := start.Add(wait); time.Now().Before(end); time.Sleep(time.Millisecond) {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil || ti.Unacked == 0 && time.Since(start) >= handshakeSettle {
			return nil
		}
	}
	return nil
}

// handshakeSettle is how long a handshake answered just before
// refuseConnections has to complete: many round trips to a DPI next to us.
const handshakeSettle = 20 * time.Millisecond

// dropBareSYN drops a TCP segment with SYN set and ACK clear and keeps any
// other whole.
var dropBareSYN = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},    // the flags octet
	{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x12}, // SYN | ACK
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x02, Jt: 0, Jf: 1},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}
