// Package forward is the subreceivers' room: what a receiver needs to hand its
// exporters' messages on to collectors.
//
// Here today:
//   - the drop reasons of an output (the label values of
//     ipfix_balancer_dropped_messages_total),
//   - Sequencer, which renumbers messages per output and observation domain
//     (RFC 7011 §3.1),
//   - Metrics, one output's counters and gauges,
//   - IOVWriter and SkipBytes, the raw writev of a batch of slices of the
//     exporter's read buffer (zero-copy forwarding).
//
// The package depends on ipfix only; balancer depends on it, never the other
// way round.
package forward
