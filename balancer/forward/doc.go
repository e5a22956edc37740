// Package forward is the subreceivers' room: how a receiver's messages reach
// the collectors behind it over TCP.
//
// A receiver (package balancer) scans each message once and hands its outputs
// a Message: the bytes (a slice of the exporter's read buffer, forwarded
// without a copy), its observation domain, its data records, what its sets
// carry, and the numbering token (Message.FreeHeader). An output sees its
// receiver only through Host (the current templates, its event loop), never
// its fields.
//
//   - Output: what every destination of a receiver implements (the dump
//     writer and the UDP subreceiver, which re-packs with the sessions'
//     templates, live in balancer).
//   - TCPOnLoop (tcponloop.go): the TCP subreceiver of a TCP receiver; its
//     connection lives on the receiver's gnet loop and a batch is one writev
//     of slices of the read buffer.
//   - TCPWriter (tcpwriter.go): the TCP subreceiver of a UDP receiver (no gnet
//     loop); the loop copies messages into batches that a writer goroutine
//     owning the connection sends, or writes them itself when it keeps up.
//   - link (link.go): the one dial/backoff/up-down state machine of both.
//   - Sequencer: sequence numbers per output and domain (RFC 7011 §3.1).
//   - Metrics and the drop reasons: one output's series.
//   - IOVWriter, SkipBytes (writev_unix.go): the raw writev.
//   - Spooler (spooler.go, spooler_writer.go): the spool of a TCP
//     subreceiver (All mode): drop puts into it what it would lose, live
//     messages follow until the replay, run on the loop, has caught up.
//
// Where a message is lost: each subreceiver's drop method is the one place a
// live message is dropped for queue_full or subreceiver_down, the place the
// store-and-forward spool takes it instead.
//
// Dependencies are one-way: balancer → balancer/forward → ipfix.
package forward
