// Package balancer receives the IPFIX streams of DPIs and forwards them to
// collectors (RoundRobin, All) or records them into dump files (Recording).
//
// # Where things are
//
//   - balancer.go: Balancer, the receivers of one configuration: Run, Reload
//     (reload.go checks and applies a new configuration live), the control socket.
//   - receiver.go: Receiver, one stream of one DPI on one socket, and its outputs;
//     session.go is one exporter session (its templates, carry, export time);
//     templateids.go maps each session's template IDs to IDs of the receiver's own
//     downstream.
//   - tcp.go: the TCP receiver on a gnet event loop (accept, framing, drain);
//     udp_linux.go: the UDP receiver on a locked OS thread with recvmmsg.
//   - the outputs: the subreceivers (TCP and UDP) are in balancer/forward, fed
//     through host.go (forward.Host, forward.UDPHost: what they may ask of a
//     receiver); output.go (their common interface), recording.go (dump files).
//   - handover.go, receiver_handover.go, udp_handover_linux.go: restart by
//     hand-over (below); listen_linux.go: how a stopping listener refuses new
//     handshakes without resetting what it already accepted.
//   - metrics.go, stats.go, status.go: counters, periodic log lines, the state the
//     console shows.
//
// # Restart by hand-over
//
// On SIGUSR2 the daemon starts its successor (the binary at the same path), which
// takes the sockets over through the unix control socket ([balancer]
// control_socket); no exporter connection is closed and no datagram is lost. The
// steps, and what each guarantees:
//
//  1. The successor loads its configuration. A configuration it refuses ends it
//     here: the old process saw nothing but the exit of its child, logs "restart
//     failed" and counts ipfix_balancer_handovers_total{result="failure"}.
//  2. It takes the metrics listener (InheritListener): the old process passes a
//     duplicate and serves on it until step 5, so /metrics never refuses.
//  3. It asks for the UDP sockets ("udp-request"): the old process passes a
//     duplicate of each with the templates of every exporter address, and keeps
//     reading. Both processes read the one socket until step 5: each datagram
//     reaches exactly one of them. A successor that fails now (a receiver that
//     cannot bind, a crash) closes its duplicates: the old process was never
//     stopped, it logs why and counts the failure.
//  4. It starts every receiver. TCP receivers bind their own listener on the same
//     port (SO_REUSEPORT): from now on the kernel spreads new connections over
//     both listeners. If one fails to start, the successor closes the control
//     connection and exits: as in step 3, the old process serves on.
//  5. Once all its receivers run, it asks for the exporter sessions
//     ("sessions-request"): that is its confirmation that it serves. The old
//     process stops reading its UDP sockets (what the kernel still queues is the
//     successor's), then on each TCP receiver's loop passes every exporter
//     connection as a duplicated fd with the partial message at the end of its
//     last read (carry) and the session's templates, and closes its own fd: the
//     duplicate keeps the socket open, the DPI sees nothing, unread bytes wait in
//     the kernel for the new owner, which completes the carried message first.
//     The hand-over counts as done (handovers_total{result="success"}).
//  6. The old process drains. Its listeners complete no more handshakes (a socket
//     filter drops SYNs; a DPI retries and reaches the successor's listener), and
//     every connection it accepts meanwhile, from its accept queue or a handshake
//     completed before the filter, is passed on at once on the control
//     connection, which stays open until the drain ends; the successor reads it
//     until then (handed_over_sessions_total{when="late"}). The outputs write what
//     they hold, then the old process exits.
//  7. A restart of the successor may come before that (back to back): its
//     predecessor may still pass it late sessions. From its own
//     "sessions-request" on, it passes those straight on to its successor as
//     they come, without adopting them (startRelay), after the ones it was
//     adopting are on its loops (a session adopted after its hand-over
//     nevertheless is passed on from OnOpen). It exits only once its
//     predecessor closed the control connection (awaitLateSessions, bounded).
//     Sessions are adopted concurrently: each Enroll waits for a turn of the
//     loop, which a loaded loop makes slow.
//
// # Closing our side of a passed connection
//
// gnet's Conn.Close only queues the close on the loop: between the pass and that
// task the loop could still read bytes that are the successor's (with hundreds of
// sessions on one loop, that is likely). So a session is passed from its own
// OnTraffic, woken for it, which returns gnet.Close: gnet drops the fd from its
// poller and closes it before it reads again. A connection accepted after the
// hand-over is passed from OnOpen, which returns gnet.Close likewise.
package balancer
