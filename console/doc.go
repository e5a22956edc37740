// Package console is the web console of ipfix-balancer: server-rendered pages
// (html/template, everything embedded, nothing loaded from another host) over
// the balancer's state, served by the daemon at / of the metrics listener.
//
//   - Overview: every receiver, its exporter sessions, rates in and out, and
//     each subreceiver (up/down, queue fill against its mark, drops by reason,
//     reconnects) and dump writer; what is wrong is flagged at the top.
//   - Plots: the last hour of rates, queue fill and drops, from samples kept in
//     memory (a bounded ring filled by one goroutine every SampleEvery from the
//     counters the balancer already keeps: nothing on the per-message path),
//     drawn server-side as SVG.
//   - Logs: the recent log lines (a bounded ring fed by LogRing.Handler, which
//     tees the daemon's slog handler), filtered by level and receiver.
//   - Receivers: the legacy GUI's receiver editor. A change is checked with
//     package config, shown as a diff, then written to the configuration file
//     atomically (the previous one kept as FILE.bak) and applied through the
//     same reload as SIGHUP; the edit touches only the changed receiver's
//     block, so comments and order survive.
//
// Every page works without JavaScript; a small embedded script refreshes the
// numbers and plots in place. Access: on a loopback listener the read-only
// pages are open; a change always needs an operator ([console] operators:
// name and SHA-256 of a token) logged in, and a per-session CSRF token, a
// SameSite=Strict cookie and an Origin check guard every POST. On a listener
// beyond loopback every page needs an operator. Every change is logged with
// the operator's name.
//
// The console leaves the balancer's hot path alone: one goroutine calls
// balancer.Balancer.Status every SampleEvery (one short task per receiver on
// its event loop, reading counters the balancer keeps anyway) and every page
// reads that sample, so the loops' load does not depend on how many browsers
// are open. Logins last 12 hours and do not survive a restart.
package console
